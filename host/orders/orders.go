// Package orders loads purchase orders from their Redis hashes, one pipelined
// round trip per batch, and validates them before any plugin sees them.
package orders

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/rediserr"

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

// Loader reads order hashes.
type Loader struct {
	rdb    redis.UniversalClient
	prefix string
	// Limits bound the orders it loads; NewLoader sets DefaultLimits.
	Limits Limits
}

// NewLoader returns a Loader for hashes named prefix+id, with the default
// limits.
func NewLoader(rdb redis.UniversalClient, prefix string) *Loader {
	return &Loader{rdb: rdb, prefix: prefix, Limits: DefaultLimits()}
}

// Key is the hash key of order id.
func (l *Loader) Key(id string) string { return l.prefix + id }

// Load fetches refs in one pipeline. Orders that are missing, malformed or
// out of bounds come back in rejected with the reason; err is only for Redis
// failing, in which case nothing was loaded. An id CheckID refuses is
// rejected without being looked up.
func (l *Loader) Load(ctx context.Context, refs []Ref) (loaded []Loaded, rejected []Rejected, err error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(refs))
	sent := make([]*redis.MapStringStringCmd, 0, len(refs))
	keys := make([]string, len(refs)) // made once, for the command and the checks
	for i, r := range refs {
		if err := l.Limits.CheckID(r.ID); err != nil {
			// A hash under an overlong id is not even marked: that would
			// send the whole id to Redis once more (Missing leaves the
			// dead letter without an order key).
			rejected = append(rejected, Rejected{Ref: r, Reason: err.Error(), Missing: len(r.ID) > l.Limits.MaxIDBytes || r.ID == ""})
			continue
		}
		keys[i] = l.Key(r.ID)
		cmds[i] = pipe.HGetAll(ctx, keys[i])
		sent = append(sent, cmds[i])
	}
	if len(sent) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			if err := RoundTripError(sent); err != nil {
				return nil, nil, fmt.Errorf("load %d orders: %w", len(sent), err)
			}
		}
	}
	loaded = make([]Loaded, 0, len(sent))
	for i, r := range refs {
		if cmds[i] == nil {
			continue
		}
		if err := cmds[i].Err(); err != nil {
			// Only a key's own error gets here (WRONGTYPE: the key is not a hash).
			rejected = append(rejected, Rejected{Ref: r, Reason: fmt.Sprintf("order key %s: %v", keys[i], err)})
			continue
		}
		o, done, err := Parse(r, keys[i], cmds[i].Val(), l.Limits)
		if err != nil {
			none := len(cmds[i].Val()) == 0
			rejected = append(rejected, Rejected{Ref: r, Reason: err.Error(), Missing: none, NotStored: none})
			continue
		}
		loaded = append(loaded, Loaded{Order: o, Ref: r, Done: done})
	}
	return loaded, rejected, nil
}

// RoundTripError returns the first error of a pipeline's commands that is
// the round trip's fault rather than its key's (see rediserr.Classify): nil
// means every failed command failed with a reply about its key (such as
// WRONGTYPE), so the keys are bad, not the round trip.
func RoundTripError[C redis.Cmder](cmds []C) error {
	for _, c := range cmds {
		if class, _ := rediserr.Classify(c.Err()); class != rediserr.Fine && class != rediserr.KeyFault {
			return c.Err()
		}
	}
	return nil
}

// Parse validates the fields of the hash at key for ref against lim. The
// error says which field is wrong and what it held (cut short), or which
// limit the order exceeds and its value. When several fields are wrong, the
// one reported is the same every time: the first by name.
func Parse(ref Ref, key string, fields map[string]string, lim Limits) (sdk.Order, map[string]bool, error) {
	if err := lim.CheckID(ref.ID); err != nil {
		return sdk.Order{}, nil, err
	}
	if len(fields) == 0 {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s does not exist", key)
	}
	o := sdk.Order{ID: ref.ID, Channel: ref.Channel}
	var done map[string]bool
	var bad error
	badName, size := "", 0
	for k, v := range fields {
		var err error
		if strings.HasPrefix(k, MarkerPrefix) {
			// Ours, stripped before plugins: only their size matters.
			if len(k) > lim.MaxFieldBytes || len(v) > lim.MaxFieldBytes {
				err = lim.checkField(key, k, v)
			}
		} else {
			size += len(k) + len(v)
			err = lim.checkField(key, k, v)
		}
		if err != nil {
			if bad == nil || k < badName {
				bad, badName = err, k
			}
			continue
		}
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
	if bad != nil {
		return sdk.Order{}, nil, bad
	}
	if size > lim.MaxOrderBytes {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s holds %d bytes, over limits.max_order_bytes = %d", key, size, lim.MaxOrderBytes)
	}
	var err error
	if o.TS, err = count(fields, "ts", lim.MinTS, lim.MaxTS, "ts"); err != nil {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: %w", key, err)
	}
	if o.Qty, err = count(fields, "qty", 1, lim.MaxQty, "qty"); err != nil {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: %w", key, err)
	}
	if o.Cost, err = lim.cost(fields); err != nil {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: %w", key, err)
	}
	if o.Event = fields["event"]; o.Event == "" {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: field event is missing or empty", key)
	}
	if o.Who = fields["who"]; o.Who == "" {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: field who is missing or empty", key)
	}
	return o, done, nil
}
