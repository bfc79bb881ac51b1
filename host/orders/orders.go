// Package orders loads purchase orders from their Redis hashes, one pipelined
// round trip per batch, and validates them before any plugin sees them.
package orders

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

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

// Ref is an order id as it arrived, with where it arrived from.
type Ref struct {
	ID      string
	Channel string
}

// Loaded is a valid order and the plugins that already applied it.
type Loaded struct {
	Order sdk.Order
	// Done holds the names of plugins whose done marker is set.
	Done map[string]bool
}

// Rejected is an order that cannot be processed, and why.
type Rejected struct {
	Ref
	Reason string
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
		return nil, nil, fmt.Errorf("load %d orders: %w", len(refs), err)
	}
	loaded = make([]Loaded, 0, len(refs))
	for i, r := range refs {
		o, done, err := Parse(r, l.Key(r.ID), cmds[i].Val())
		if err != nil {
			rejected = append(rejected, Rejected{Ref: r, Reason: err.Error()})
			continue
		}
		loaded = append(loaded, Loaded{Order: o, Done: done})
	}
	return loaded, rejected, nil
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
