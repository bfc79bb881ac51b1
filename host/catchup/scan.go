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
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/redisconn"
)

//go:embed scan.lua
var scanLua string

// scanStep is scan.lua: one SCAN page and its markers, inside Redis.
var scanStep = redis.NewScript(scanLua)

// Scanner walks the order hashes. The walk runs inside Redis, one short
// script call per page, so a key costs no round trip of its own and Redis
// is never blocked for long: each call's page size is tuned to take about
// StepTarget.
type Scanner struct {
	rdb    redis.UniversalClient
	prefix string
	// Count is the SCAN COUNT hint of the first call: keys looked at per
	// call. Later calls adjust it towards StepTarget.
	Count int64
	// StepTarget is how long one call may keep Redis busy; 0 keeps Count
	// fixed.
	StepTarget time.Duration
}

// NewScanner returns a scanner over the hashes named prefix+id.
func NewScanner(rdb redis.UniversalClient, prefix string) *Scanner {
	// 1 ms, not more: a live order's load and apply each wait for the call
	// in progress. During a 1M-order scan, 2 ms calls added 4.1–4.2 ms to
	// live orders' median latency (over the stream source's, with no scan,
	// in the same run), 1 ms calls 1.6–1.8 ms; the scan took 1.5–2x longer
	// while live orders flowed (BenchmarkCatchUpHistory; the p99s were
	// ruled by a busy machine either way).
	return &Scanner{rdb: rdb, prefix: prefix, Count: 500, StepTarget: time.Millisecond}
}

// Want is a plugin whose unfinished orders a scan looks for.
type Want struct {
	Plugin string
	// History includes orders stored before the plugin was first enabled
	// (a backfill); catch-up leaves them out.
	History bool
	// Token is the plugin's registration token (see Registry.Enable): a
	// history marker counts only when it holds this value, so the markers
	// of an interrupted marking count for nothing. "" counts every history
	// marker.
	Token string
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
	Calls      int // script calls, one per SCAN page
	// Longest is the longest call, round trip included (an upper bound on
	// how long one kept Redis busy).
	Longest time.Duration
}

// minCount and maxCount bound the SCAN COUNT hint.
const (
	minCount = 50
	maxCount = 20000
)

// Scan walks every order hash once and calls fn with each page's
// unfinished orders. Keys added during the scan may or may not be seen
// (SCAN's guarantee); the caller is subscribed by then, so those arrive live.
func (s *Scanner) Scan(ctx context.Context, wants []Want, fn func([]Unfinished) error) (Stats, error) {
	var st Stats
	if len(wants) == 0 {
		return st, nil
	}
	args := make([]any, 0, 5+5*len(wants))
	args = append(args, "0", globEscape(s.prefix)+"*", s.Count, len(s.prefix), len(wants))
	for _, w := range wants {
		token := w.Token
		if w.History {
			token = "*" // no marker holds it: history counts for nothing
		}
		args = append(args, keyspace.DoneField(w.Plugin), keyspace.DeadField(w.Plugin), keyspace.HistoryField(w.Plugin), token, keyspace.DoneListNeedle(w.Plugin))
	}
	// A cluster is walked master by master, each with its own cursor.
	err := redisconn.ForEachMaster(ctx, s.rdb, func(ctx context.Context, node redis.UniversalClient) error {
		return s.scanNode(ctx, node, args, wants, &st, fn)
	})
	return st, err
}

// scanNode is Scan on one node (all of Redis but on a cluster).
func (s *Scanner) scanNode(ctx context.Context, node redis.UniversalClient, args []any, wants []Want, st *Stats, fn func([]Unfinished) error) error {
	args[0] = "0"
	count := max(s.Count, minCount)
	for {
		args[2] = count
		sent := time.Now()
		page, err := scanStep.Run(ctx, node, nil, args...).Slice()
		took := time.Since(sent)
		if err != nil {
			return fmt.Errorf("scan %s*: %w", s.prefix, err)
		}
		next, found, err := s.decode(page, wants)
		if err != nil {
			return fmt.Errorf("scan %s*: %w", s.prefix, err)
		}
		st.Calls++
		st.Keys += int(page[1].(int64))
		st.Unfinished += len(found)
		st.Longest = max(st.Longest, took)
		if len(found) > 0 {
			if err := fn(found); err != nil {
				return err
			}
		}
		if next == "0" {
			return nil
		}
		args[0] = next
		count = s.tune(count, took)
	}
}

// tune scales count so that the next call takes about StepTarget (the
// round trip counts too, which errs on the short side).
func (s *Scanner) tune(count int64, took time.Duration) int64 {
	if s.StepTarget <= 0 {
		return count
	}
	took = max(took, 50*time.Microsecond)
	next := int64(float64(count) * float64(s.StepTarget) / float64(took))
	// Move at most 2x per call: one page of many unfinished orders is slow
	// without the next being so.
	next = min(next, 2*count)
	next = max(next, count/2)
	return min(max(next, minCount), maxCount)
}

func (s *Scanner) decode(page []any, wants []Want) (next string, found []Unfinished, err error) {
	if len(page) != 3 {
		return "", nil, fmt.Errorf("unexpected reply of %d elements", len(page))
	}
	next, _ = page[0].(string)
	pairs, _ := page[2].([]any)
	for i := 0; i+1 < len(pairs); i += 2 {
		id, _ := pairs[i].(string)
		flags, _ := pairs[i+1].(string)
		u := Unfinished{ID: id}
		for j := 0; j < len(flags) && j < len(wants); j++ {
			if flags[j] == '1' {
				u.Plugins = append(u.Plugins, wants[j].Plugin)
			}
		}
		found = append(found, u)
	}
	return next, found, nil
}

// globEscape makes prefix match itself in a SCAN MATCH pattern.
func globEscape(prefix string) string {
	var b strings.Builder
	for _, r := range prefix {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
