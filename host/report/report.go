// Package report reads the metrics that the tutorial's subscribers (now
// eventhost plugins) keep in Redis and renders them as a text report: sales
// by hour of day, overall and per event, sales totals per event, and how
// many invoices customers have.
package report

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Keys and key prefixes the plugins write.
const (
	HistogramKey    = "sales_histogram:time_of_day"
	HistogramPrefix = HistogramKey + ":"
	SummaryKey      = "sales_summary"
	InvoicesPrefix  = "invoices:"

	salesSuffix   = ":total_sales"
	ticketsSuffix = ":total_tickets_sold"
)

// DefaultCounter is the histogram counter type the tutorial uses.
const DefaultCounter = "u8"

// Hours is the number of histogram buckets, one per hour of day (UTC).
const Hours = 24

// scanCount is the COUNT hint for SCAN, and batchSize the number of keys read
// per pipeline round trip.
const (
	scanCount = 1000
	batchSize = 1000
)

// Layout describes how the histograms are stored.
type Layout struct {
	// Counter is the BITFIELD type of each hour's counter, e.g. "u8" or
	// "i64". Empty means DefaultCounter. The counter for hour h is at bit
	// offset (h+1)*bits; slot 0 is unused, as in the tutorial.
	Counter string
}

func (l Layout) counter() string {
	if l.Counter == "" {
		return DefaultCounter
	}
	return l.Counter
}

// EventTotal is one event's line in sales_summary.
type EventTotal struct {
	Event string
	Sales float64
	// SalesText is the total as Redis stores it (HINCRBYFLOAT drops
	// trailing zeros: "245.5"), kept because a float64 may not round-trip
	// Redis's long-double sum.
	SalesText string
	Tickets   int64
}

// Report is a snapshot of the metrics.
type Report struct {
	// Overall[h] is the counter for hour h of sales_histogram:time_of_day.
	Overall [Hours]int64
	// PerEvent holds the histogram of every event that has one.
	PerEvent map[string][Hours]int64
	// Totals is sorted by Sales, highest first, then by Event.
	Totals []EventTotal
	// InvoiceCounts maps a number of invoices to how many customers have
	// that many.
	InvoiceCounts map[int64]int64
	// Customers is the number of invoices:<who> sets.
	Customers int64
}

// Read takes a snapshot of the metrics in rdb. Missing keys read as zero, so
// an empty database gives an empty report. The keys are read in several round
// trips, so the snapshot is not atomic while plugins are writing. A key of the
// wrong type, or a sales_summary field that is not a number, is an error.
func Read(ctx context.Context, rdb redis.UniversalClient, layout Layout) (*Report, error) {
	typ := layout.counter()
	bits, signed, err := ParseCounter(typ)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	r := &Report{PerEvent: map[string][Hours]int64{}, InvoiceCounts: map[int64]int64{}}

	eventKeys, err := scanKeys(ctx, rdb, HistogramPrefix+"*", "string")
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	hist, err := readHistograms(ctx, rdb, append([]string{HistogramKey}, eventKeys...), bits, signed)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	r.Overall = hist[0]
	for i, k := range eventKeys {
		r.PerEvent[strings.TrimPrefix(k, HistogramPrefix)] = hist[i+1]
	}

	if r.Totals, err = readTotals(ctx, rdb); err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}

	invoiceKeys, err := scanKeys(ctx, rdb, InvoicesPrefix+"*", "set")
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	for chunk := range slices.Chunk(invoiceKeys, batchSize) {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(chunk))
		for i, k := range chunk {
			cmds[i] = pipe.SCard(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("read report: count invoices: %w", err)
		}
		for _, c := range cmds {
			// A set emptied between SCAN and SCARD no longer exists: it
			// is not a customer.
			if n := c.Val(); n > 0 {
				r.InvoiceCounts[n]++
				r.Customers++
			}
		}
	}
	return r, nil
}

func readHistograms(ctx context.Context, rdb redis.UniversalClient, keys []string, bits int, signed bool) ([][Hours]int64, error) {
	out := make([][Hours]int64, 0, len(keys))
	for chunk := range slices.Chunk(keys, batchSize) {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(chunk))
		for i, k := range chunk {
			cmds[i] = pipe.Get(ctx, k)
		}
		// redis.Nil only means a key vanished after SCAN; other errors
		// are real.
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("get histograms: %w", err)
		}
		for i, c := range cmds {
			buf, err := c.Bytes()
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("get histogram %s: %w", chunk[i], err)
			}
			var h [Hours]int64
			for hour := range h {
				h[hour] = decode(buf, bits, signed, (hour+1)*bits)
			}
			out = append(out, h)
		}
	}
	return out, nil
}

func readTotals(ctx context.Context, rdb redis.UniversalClient) ([]EventTotal, error) {
	fields, err := rdb.HGetAll(ctx, SummaryKey).Result()
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", SummaryKey, err)
	}
	byEvent := map[string]*EventTotal{}
	get := func(event string) *EventTotal {
		t := byEvent[event]
		if t == nil {
			t = &EventTotal{Event: event, SalesText: "0"}
			byEvent[event] = t
		}
		return t
	}
	for f, v := range fields {
		// Event names may contain colons, so only the suffix is reliable.
		if event, ok := strings.CutSuffix(f, salesSuffix); ok {
			s, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("%s field %q = %q is not a number", SummaryKey, f, v)
			}
			t := get(event)
			t.Sales, t.SalesText = s, v
		} else if event, ok := strings.CutSuffix(f, ticketsSuffix); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s field %q = %q is not an integer", SummaryKey, f, v)
			}
			get(event).Tickets = n
		}
	}
	totals := make([]EventTotal, 0, len(byEvent))
	for _, t := range byEvent {
		totals = append(totals, *t)
	}
	slices.SortFunc(totals, func(a, b EventTotal) int {
		switch {
		case a.Sales > b.Sales:
			return -1
		case a.Sales < b.Sales:
			return 1
		}
		return strings.Compare(a.Event, b.Event)
	})
	return totals, nil
}

// scanKeys returns the keys matching match whose type is keyType, sorted and
// without duplicates (SCAN may return a key twice). Filtering by type keeps a
// stray key that happens to share the prefix from failing the whole report.
// On a cluster every master is scanned, since SCAN covers one node only.
func scanKeys(ctx context.Context, rdb redis.UniversalClient, match, keyType string) ([]string, error) {
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.ScanType(ctx, cursor, match, scanCount, keyType).Result()
			if err != nil {
				return fmt.Errorf("scan %s: %w", match, err)
			}
			mu.Lock()
			for _, k := range keys {
				seen[k] = true
			}
			mu.Unlock()
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, rdb)
	}
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}
