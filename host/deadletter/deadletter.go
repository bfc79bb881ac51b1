// Package deadletter defines the entries eventhost writes to its dead-letter
// stream: orders, or (order, plugin) pairs, that could not be processed, with
// the reason, so a person can find and replay them.
package deadletter

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Entry is one dead letter. Plugin is empty when the order itself was bad
// (missing or malformed hash) and no plugin saw it.
type Entry struct {
	// StreamID is the entry's id in the stream; empty before it is written.
	StreamID string
	OrderID  string
	Channel  string
	Plugin   string
	Reason   string
	Attempts int
	Time     time.Time
	// OrderKey is the order's hash, which the applier marks so catch-up
	// passes the order over; empty when there is no hash to mark. Not
	// written to the stream.
	OrderKey string
}

// Fields returns e as stream field/value pairs, without the time (the
// applier stamps it from the same clock as the done markers).
func (e Entry) Fields() []string {
	return []string{
		"order_id", e.OrderID,
		"channel", e.Channel,
		"plugin", e.Plugin,
		"reason", e.Reason,
		"attempts", strconv.Itoa(e.Attempts),
	}
}

// FromMessage decodes a stream entry written by the applier.
func FromMessage(m redis.XMessage) Entry {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	e := Entry{StreamID: m.ID, OrderID: str("order_id"), Channel: str("channel"), Plugin: str("plugin"), Reason: str("reason")}
	e.Attempts, _ = strconv.Atoi(str("attempts"))
	if ms, err := strconv.ParseInt(str("time_ms"), 10, 64); err == nil {
		e.Time = time.UnixMilli(ms).UTC()
	}
	return e
}

// List returns up to count entries of stream, oldest first.
func List(ctx context.Context, rdb redis.UniversalClient, stream string, count int64) ([]Entry, error) {
	msgs, err := rdb.XRangeN(ctx, stream, "-", "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("read dead letters from %s: %w", stream, err)
	}
	out := make([]Entry, len(msgs))
	for i, m := range msgs {
		out[i] = FromMessage(m)
	}
	return out, nil
}
