// Package orders loads purchase orders from their Redis hashes, one pipelined
// round trip per batch, and validates them before any plugin sees them.
package orders

import (
	"time"

	"github.com/eventhost/eventhost/sdk"
)

// Ref is an order id as it arrived, with where it arrived from and what is
// still to be done with it.
type Ref struct {
	ID      string
	Channel string
	// StreamID is the source stream entry to acknowledge once every plugin
	// has finished with the order; empty for Pub/Sub.
	StreamID string
	// Stream is the key of the source stream StreamID is in: a sharded
	// stream source reads several (Channel names them all).
	Stream string
	// Only, when not nil, limits the order to these plugins (a retry, a
	// catch-up, a backfill or a replay); nil means every plugin that
	// listens on Channel.
	Only []string
	// Attempt counts earlier tries of the plugins in Only.
	Attempt int
	// HashWaits counts how often a stream entry was held back because its
	// order hash was not stored yet.
	HashWaits int
	// Replays is the dead-letter entry this ref replays; it is deleted in
	// the same atomic step that finishes the order.
	Replays string
	// Poison, when set, dead-letters the order with this reason without
	// loading it (a stream entry delivered too often).
	Poison string
	// Received is when the id arrived, for the end-to-end latency metric;
	// zero for catch-up, backfill and replay.
	Received time.Time
}

// For reports whether plugin should see the order: it is in Only, or Only is
// nil and the plugin listens on the order's channel.
func (r Ref) For(plugin string, listens func(channel string) bool) bool {
	if r.Only == nil {
		return listens(r.Channel)
	}
	for _, p := range r.Only {
		if p == plugin {
			return true
		}
	}
	return false
}

// Loaded is a valid order and the plugins that already applied it.
type Loaded struct {
	Order sdk.Order
	Ref   Ref
	// Key is the order's hash key, as the loader read it.
	Key string
	// Done holds the names of plugins whose done marker is set.
	Done map[string]bool
}

// Rejected is an order that cannot be processed, and why.
type Rejected struct {
	Ref
	Reason string
	// Missing is true when no hash was read: there was none (an id
	// announced before or without its hash), or the id was empty or too
	// long to look up. Such an order is not marked dead: once its hash is
	// stored, catch-up still counts it; and an overlong id is not sent to
	// Redis again to mark it.
	Missing bool
	// NotStored is the first case alone: a valid id whose hash is not
	// there (yet). A stream source waits for it before giving up.
	NotStored bool
}
