// Package catchup finds stored orders that a plugin has not finished, so an
// order published while the host was down, or in flight when it died, is
// still counted. Pub/Sub forgets; the order hashes do not.
//
// An order is unfinished for plugin P when its hash has none of P's markers:
// done (effects applied), dead (dead-lettered, waiting for a replay) and
// history (already stored when P was first enabled; see Registry). Backfill
// asks for history too.
package catchup

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/orders"
)

// Scanner walks the order hashes.
type Scanner struct {
	rdb    redis.UniversalClient
	prefix string
	// Count is the SCAN COUNT hint: keys looked at per round trip.
	Count int64
}

// NewScanner returns a scanner over the hashes named prefix+id.
func NewScanner(rdb redis.UniversalClient, prefix string) *Scanner {
	return &Scanner{rdb: rdb, prefix: prefix, Count: 1000}
}

// Want is a plugin whose unfinished orders a scan looks for.
type Want struct {
	Plugin string
	// History includes orders stored before the plugin was first enabled
	// (a backfill); catch-up leaves them out.
	History bool
}

// Unfinished is an order and the plugins that have yet to finish it.
type Unfinished struct {
	ID      string
	Plugins []string
}

// Stats says what a scan looked at.
type Stats struct {
	Keys       int // order keys seen
	Unfinished int // orders with at least one plugin to go
}

// probeFields are order fields asked for alongside the markers: when every
// one is nil the key is gone (deleted since SCAN saw it), not unfinished.
var probeFields = []string{"ts", "qty", "cost", "event", "who"}

// Scan walks every order hash once and calls fn with each chunk's
// unfinished orders. Keys added during the scan may or may not be seen
// (SCAN's guarantee); the caller is subscribed by then, so those arrive live.
func (s *Scanner) Scan(ctx context.Context, wants []Want, fn func([]Unfinished) error) (Stats, error) {
	var st Stats
	if len(wants) == 0 {
		return st, nil
	}
	fields := append([]string{}, probeFields...)
	fields = append(fields, orders.DeadOrderField)
	for _, w := range wants {
		fields = append(fields, orders.DoneField(w.Plugin), orders.DeadField(w.Plugin), orders.HistoryField(w.Plugin))
	}
	var cursor uint64
	for {
		keys, next, err := s.rdb.Scan(ctx, cursor, s.prefix+"*", s.Count).Result()
		if err != nil {
			return st, fmt.Errorf("scan %s*: %w", s.prefix, err)
		}
		st.Keys += len(keys)
		if len(keys) > 0 {
			found, err := s.check(ctx, keys, wants, fields)
			if err != nil {
				return st, err
			}
			st.Unfinished += len(found)
			if len(found) > 0 {
				if err := fn(found); err != nil {
					return st, err
				}
			}
		}
		if cursor = next; cursor == 0 {
			return st, nil
		}
	}
}

func (s *Scanner) check(ctx context.Context, keys []string, wants []Want, fields []string) ([]Unfinished, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HMGet(ctx, k, fields...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		if err := orders.RoundTripError(cmds); err != nil {
			return nil, fmt.Errorf("read markers of %d orders: %w", len(keys), err)
		}
	}
	var out []Unfinished
	base := len(probeFields)
	for i, c := range cmds {
		vals, err := c.Result()
		if err != nil {
			continue // not a hash: no order of ours
		}
		exists := false
		for _, v := range vals[:base] {
			exists = exists || v != nil
		}
		if !exists || vals[base] != nil {
			continue // gone, or a bad order already dead-lettered
		}
		var plugins []string
		for j, w := range wants {
			done, dead, history := vals[base+1+3*j], vals[base+2+3*j], vals[base+3+3*j]
			if done == nil && dead == nil && (history == nil || w.History) {
				plugins = append(plugins, w.Plugin)
			}
		}
		if plugins != nil {
			out = append(out, Unfinished{ID: strings.TrimPrefix(keys[i], s.prefix), Plugins: plugins})
		}
	}
	return out, nil
}
