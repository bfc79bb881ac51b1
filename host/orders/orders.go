// Package orders loads purchase orders from their Redis hashes, one pipelined
// round trip per batch, and validates them before any plugin sees them.
package orders

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/redisconn"

	"github.com/eventhost/eventhost/sdk"
)

// MarkerPrefix starts every field eventhost itself keeps in an order's hash.
// Such fields are stripped before an order reaches a plugin.
const MarkerPrefix = "eventhost:"

// DonePrefix + plugin name is the field that records that the plugin's
// effects for the order have been applied.
const DonePrefix = MarkerPrefix + "done:"

// DoneField is the marker field for plugin.
func DoneField(plugin string) string { return DonePrefix + plugin }

// DeadPrefix + plugin name marks an order dead-lettered for that plugin;
// DeadField (no plugin) marks an order that is itself bad. Catch-up passes
// over dead-lettered pairs: they wait for a replay.
const DeadPrefix = MarkerPrefix + "dead:"

// DeadOrderField marks an order hash that no plugin could be given.
const DeadOrderField = MarkerPrefix + "dead"

// DeadField is the dead-letter marker field for plugin ("" for the order).
func DeadField(plugin string) string {
	if plugin == "" {
		return DeadOrderField
	}
	return DeadPrefix + plugin
}

// HistoryPrefix + plugin name marks an order that was already stored when
// the plugin was first enabled: catch-up leaves it alone, backfill does not.
const HistoryPrefix = MarkerPrefix + "history:"

// HistoryField is the history marker field for plugin.
func HistoryField(plugin string) string { return HistoryPrefix + plugin }

// Ref is an order id as it arrived, with where it arrived from and what is
// still to be done with it.
type Ref struct {
	ID      string
	Channel string
	// StreamID is the source stream entry to acknowledge once every plugin
	// has finished with the order; empty for Pub/Sub.
	StreamID string
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
	// Done holds the names of plugins whose done marker is set.
	Done map[string]bool
}

// Rejected is an order that cannot be processed, and why.
type Rejected struct {
	Ref
	Reason string
	// Missing is true when there was no hash at all: an id announced before
	// (or without) its hash. Such an order is not marked dead, so that once
	// its hash is stored, catch-up still counts it.
	Missing bool
}

// Loader reads order hashes.
type Loader struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewLoader returns a Loader for hashes named prefix+id.
func NewLoader(rdb redis.UniversalClient, prefix string) *Loader {
	return &Loader{rdb: rdb, prefix: prefix}
}

// Key is the hash key of order id.
func (l *Loader) Key(id string) string { return l.prefix + id }

// Load fetches refs in one pipeline. Orders that are missing or malformed come
// back in rejected with the reason; err is only for Redis failing, in which
// case nothing was loaded.
func (l *Loader) Load(ctx context.Context, refs []Ref) (loaded []Loaded, rejected []Rejected, err error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(refs))
	for i, r := range refs {
		cmds[i] = pipe.HGetAll(ctx, l.Key(r.ID))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		if err := RoundTripError(cmds); err != nil {
			return nil, nil, fmt.Errorf("load %d orders: %w", len(refs), err)
		}
	}
	loaded = make([]Loaded, 0, len(refs))
	for i, r := range refs {
		if err := cmds[i].Err(); err != nil {
			// Only a key's own error gets here (WRONGTYPE: the key is not a hash).
			rejected = append(rejected, Rejected{Ref: r, Reason: fmt.Sprintf("order key %s: %v", l.Key(r.ID), err)})
			continue
		}
		o, done, err := Parse(r, l.Key(r.ID), cmds[i].Val())
		if err != nil {
			rejected = append(rejected, Rejected{Ref: r, Reason: err.Error(), Missing: len(cmds[i].Val()) == 0})
			continue
		}
		loaded = append(loaded, Loaded{Order: o, Ref: r, Done: done})
	}
	return loaded, rejected, nil
}

// RoundTripError returns the first error of a pipeline's commands that is
// the round trip's fault rather than its key's (see redisconn.Classify): nil
// means every failed command failed with a reply about its key (such as
// WRONGTYPE), so the keys are bad, not the round trip.
func RoundTripError[C redis.Cmder](cmds []C) error {
	for _, c := range cmds {
		if class, _ := redisconn.Classify(c.Err()); class != redisconn.Fine && class != redisconn.KeyFault {
			return c.Err()
		}
	}
	return nil
}

// Parse validates the fields of the hash at key for ref. The error says which
// field is wrong and what it held.
func Parse(ref Ref, key string, fields map[string]string) (sdk.Order, map[string]bool, error) {
	if ref.ID == "" {
		return sdk.Order{}, nil, fmt.Errorf("empty order id")
	}
	if len(fields) == 0 {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s does not exist", key)
	}
	o := sdk.Order{ID: ref.ID, Channel: ref.Channel}
	var done map[string]bool
	for k, v := range fields {
		switch k {
		case "ts", "qty", "cost", "event", "who":
			continue
		}
		if strings.HasPrefix(k, DonePrefix) {
			if done == nil {
				done = map[string]bool{}
			}
			done[strings.TrimPrefix(k, DonePrefix)] = true
			continue
		}
		if strings.HasPrefix(k, MarkerPrefix) {
			continue
		}
		if o.Extra == nil {
			o.Extra = map[string]string{}
		}
		o.Extra[k] = v
	}
	var err error
	if o.TS, err = positiveInt(fields, "ts", "a unix time in seconds"); err != nil {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: %w", key, err)
	}
	if o.Qty, err = positiveInt(fields, "qty", "a positive integer"); err != nil {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: %w", key, err)
	}
	cost, ok := fields["cost"]
	if !ok {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: field cost is missing", key)
	}
	if o.Cost, err = strconv.ParseFloat(cost, 64); err != nil || math.IsInf(o.Cost, 0) || math.IsNaN(o.Cost) || o.Cost < 0 {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: field cost = %q is not a non-negative number", key, cost)
	}
	if o.Event = fields["event"]; o.Event == "" {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: field event is missing or empty", key)
	}
	if o.Who = fields["who"]; o.Who == "" {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: field who is missing or empty", key)
	}
	return o, done, nil
}

func positiveInt(fields map[string]string, name, want string) (int64, error) {
	s, ok := fields[name]
	if !ok {
		return 0, fmt.Errorf("field %s is missing", name)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("field %s = %q is not %s", name, s, want)
	}
	return n, nil
}
