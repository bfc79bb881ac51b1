// Package deadletter defines the entries eventhost writes to its dead-letter
// stream: orders, or (order, plugin) pairs, that could not be processed, with
// the reason, so a person can find and replay them.
package deadletter

import (
	"context"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

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

// Bounds on what one dead letter stores. The id and the reason come from
// whoever published the order (a reason quotes the bad field, or a plugin's
// error text): without a bound, each bogus id would cost its own size twice.
// An id longer than MaxIDBytes cannot be a valid order (config refuses a
// limits.max_id_bytes above it), so cutting it loses nothing a replay needs.
// A reason may run longer than an id and still be worth reading whole: a
// refused effect names the key and both pattern lists, which a block with a
// dozen allow_keys takes past 1 KiB. A bad order's reason, all a PUBLISH
// alone can cause, stays near 1 KiB at most (it quotes at most 64 bytes of
// a value, and an id only within limits.max_id_bytes), so such an entry
// costs at most about 2 KiB of Redis memory.
const (
	MaxIDBytes     = 1024
	MaxReasonBytes = 2048
)

// TruncatedMarker ends a stored id or reason that was cut to its bound,
// followed by the original length: "…[truncated, 1048576 bytes]".
const TruncatedMarker = "…[truncated, "

// Fields returns e as stream field/value pairs, without the time (the
// applier stamps it from the same clock as the done markers). The id and
// the reason are cut to MaxIDBytes and MaxReasonBytes.
func (e Entry) Fields() []string {
	return []string{
		"order_id", Truncate(e.OrderID, MaxIDBytes),
		"channel", e.Channel,
		"plugin", e.Plugin,
		"reason", Truncate(e.Reason, MaxReasonBytes),
		"attempts", strconv.Itoa(e.Attempts),
	}
}

// Truncate returns s if it holds at most n bytes; otherwise s cut to at most
// n bytes on a UTF-8 boundary, then TruncatedMarker and s's length, so a
// reader knows it was cut and by how much. The result may exceed n by the
// marker's length (at most 40 bytes).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	// Back up to a rune start, at most 3 bytes; invalid UTF-8 is kept as is.
	for i := 0; i < 3 && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	return s[:cut] + TruncatedMarker + strconv.Itoa(len(s)) + " bytes]"
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
