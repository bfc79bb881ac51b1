package deadletter

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// NoPlugin is how a filter (and a listing) names the empty plugin of an
// order that was itself bad.
const NoPlugin = "-"

// Filter selects entries. The zero Filter selects every entry.
type Filter struct {
	// Plugin, when set, selects the entries for that plugin; NoPlugin
	// selects the bad orders.
	Plugin string
	// ID, when set, selects the entries for that order id.
	ID string
}

// Match reports whether e is selected by f.
func (f Filter) Match(e Entry) bool {
	switch {
	case f.ID != "" && e.OrderID != f.ID:
		return false
	case f.Plugin == NoPlugin:
		return e.Plugin == ""
	case f.Plugin != "":
		return e.Plugin == f.Plugin
	}
	return true
}

// findPage is how many entries Find reads per round trip.
const findPage = 1000

// Find returns the entries of stream that f selects, oldest first, at most
// limit of them (no limit when limit <= 0). more reports whether the stream
// holds at least one more selected entry past the limit.
func Find(ctx context.Context, rdb redis.UniversalClient, stream string, f Filter, limit int) (found []Entry, more bool, err error) {
	start := "-"
	for {
		msgs, err := rdb.XRangeN(ctx, stream, start, "+", findPage).Result()
		if err != nil {
			return nil, false, fmt.Errorf("read dead letters from %s: %w", stream, err)
		}
		for _, m := range msgs {
			e := FromMessage(m)
			if !f.Match(e) {
				continue
			}
			if limit > 0 && len(found) == limit {
				return found, true, nil
			}
			found = append(found, e)
		}
		if len(msgs) < findPage {
			return found, false, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}
