package report

import (
	"context"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/sdk"
)

func TestCounterType(t *testing.T) {
	for _, tc := range []struct {
		typ    string
		bits   int
		signed bool
		bad    bool
	}{
		{typ: "u8", bits: 8}, {typ: "u1", bits: 1}, {typ: "u63", bits: 63},
		{typ: "i1", bits: 1, signed: true}, {typ: "i64", bits: 64, signed: true},
		{typ: "u64", bad: true}, {typ: "i65", bad: true}, {typ: "u0", bad: true},
		{typ: "u08", bad: true}, {typ: "U8", bad: true}, {typ: "u", bad: true},
		{typ: "", bad: true}, {typ: "u-8", bad: true}, {typ: "x8", bad: true}, {typ: "u8 ", bad: true},
	} {
		bits, signed, err := counterType(tc.typ)
		if tc.bad {
			if err == nil {
				t.Errorf("counterType(%q) = %d, %v; want an error", tc.typ, bits, signed)
			}
			continue
		}
		if err != nil || bits != tc.bits || signed != tc.signed {
			t.Errorf("counterType(%q) = %d, %v, %v; want %d, %v", tc.typ, bits, signed, err, tc.bits, tc.signed)
		}
	}
}

func TestDecodeCounter(t *testing.T) {
	ff8 := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for _, tc := range []struct {
		name string
		buf  []byte
		typ  string
		slot int
		want int64
	}{
		{"u8 slot 1", []byte{0x00, 0x2c}, "u8", 1, 44},
		{"u8 slot 0", []byte{0x2c, 0x01}, "u8", 0, 44},
		{"u8 max", []byte{0x00, 0x00, 0xff}, "u8", 2, 255},
		{"u8 past end", []byte{0x00, 0x2c}, "u8", 3, 0},
		{"u8 empty", nil, "u8", 1, 0},
		{"u16", []byte{0, 0, 0x01, 0x2c}, "u16", 1, 300},
		{"u16 half present", []byte{0, 0, 0x01}, "u16", 1, 256},
		{"i8 -1", []byte{0, 0xff}, "i8", 1, -1},
		{"i8 min", []byte{0, 0x80}, "i8", 1, -128},
		{"i8 max", []byte{0, 0x7f}, "i8", 1, 127},
		{"u32", []byte{0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef}, "u32", 1, 0xdeadbeef},
		// u5 slot 1 is bits 5..9: 00000[101 01]000000 = 0b10101.
		{"u5 across bytes", []byte{0x05, 0x40}, "u5", 1, 21},
		// u5 slot 2 is bits 10..14: 0x2e = 00101110, bits 10..14 = 10111.
		{"u5 inside byte", []byte{0x00, 0x2e}, "u5", 2, 0b10111},
		{"u5 truncated", []byte{0x05}, "u5", 1, 0b10100},
		{"i64 -1", append(make([]byte, 8), ff8...), "i64", 1, -1},
		{"i64 min", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0}, "i64", 1, -1 << 63},
		{"u63 max", append([]byte{0x01}, append(ff8, ff8...)...), "u63", 1, 1<<63 - 1},
		{"u63 slot 0 ignores bit 63", ff8, "u63", 0, 1<<63 - 1},
		{"u63 slot 0 last bit", []byte{0, 0, 0, 0, 0, 0, 0, 0x02}, "u63", 0, 1},
		{"u1", []byte{0x40}, "u1", 1, 1},
		{"i1", []byte{0x40}, "i1", 1, -1},
	} {
		got, err := DecodeCounter(tc.buf, tc.typ, tc.slot)
		if err != nil || got != tc.want {
			t.Errorf("%s: DecodeCounter(% x, %s, %d) = %d, %v; want %d", tc.name, tc.buf, tc.typ, tc.slot, got, err, tc.want)
		}
	}
	if _, err := DecodeCounter(nil, "u8", -1); err == nil {
		t.Error("negative slot: no error")
	}
	if _, err := DecodeCounter(nil, "u64", 1); err == nil {
		t.Error("u64: no error")
	}
}

// TestDecodeCounterRoundTrip writes random counters with an independent
// encoder and reads them back, for every type.
func TestDecodeCounterRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for signed := range 2 {
		for bits := 1; bits <= 64; bits++ {
			typ := "u"
			if signed == 1 {
				typ = "i"
			} else if bits == 64 {
				continue
			}
			typ += strconv.Itoa(bits)
			vals := make([]int64, 25)
			buf := make([]byte, (len(vals)*bits+7)/8)
			for slot := range vals {
				vals[slot] = wrap(int64(rng.Uint64()), bits, signed == 1)
				setBits(buf, slot*bits, bits, uint64(vals[slot]))
			}
			for slot, want := range vals {
				if got, err := DecodeCounter(buf, typ, slot); err != nil || got != want {
					t.Fatalf("%s slot %d: got %d, %v; want %d", typ, slot, got, err, want)
				}
			}
		}
	}
}

func setBits(buf []byte, offset, bits int, v uint64) {
	for i := range bits {
		pos := offset + i
		mask := byte(1) << (7 - pos%8)
		if v>>(bits-1-i)&1 == 1 {
			buf[pos/8] |= mask
		} else {
			buf[pos/8] &^= mask
		}
	}
}

// wrap is v as Redis's default OVERFLOW WRAP leaves it in a counter.
func wrap(v int64, bits int, signed bool) int64 {
	if bits == 64 {
		return v
	}
	u := uint64(v) & (1<<bits - 1)
	if signed && u>>(bits-1) == 1 {
		u |= ^uint64(0) << bits
	}
	return int64(u)
}

const (
	athletics = "Athletics: Men's 100m Final"
	swimming  = "Swimming: Women's 200m Butterfly"

	histKey     = "sales_histogram:time_of_day"
	summaryKey  = "sales_summary"
	salesSuffix = ":total_sales"
	ticketsSfx  = ":total_tickets_sold"
)

// tutorialViews are the views the tutorial's three plugins declare (see
// their TestXViews), with the histogram's counter type typ.
func tutorialViews(typ string) []Plugin {
	hist := func(key string) *sdk.HistogramView {
		return &sdk.HistogramView{Key: key, Counter: typ, FirstSlot: 1, Buckets: sdk.HourBuckets()}
	}
	return []Plugin{
		{Name: "sales-histogram", Views: []sdk.View{
			{Title: "Sales by hour of day (UTC), all events", Histogram: hist(histKey)},
			{Title: "Sales by hour of day (UTC), per event", Histogram: hist(histKey + ":*")},
		}},
		{Name: "events-summary", Views: []sdk.View{{Title: "Totals per event", Table: &sdk.TableView{
			Key: summaryKey, RowLabel: "EVENT", SortBy: 1,
			Columns: []sdk.TableColumn{{Label: "TICKETS", Suffix: ticketsSfx}, {Label: "SALES", Suffix: salesSuffix, Decimals: 2}},
		}}}},
		{Name: "customer-invoices", Views: []sdk.View{{Title: "Customers by number of invoices",
			KeyCount: &sdk.KeyCountView{Pattern: "invoices:*", SizeLabel: "INVOICES", KeysLabel: "CUSTOMERS"}}}},
		{Name: "top-customers", Views: []sdk.View{{Title: "Top customers",
			Leaderboard: &sdk.LeaderboardView{Key: "top_customers", Limit: 2, MemberLabel: "CUSTOMER", ScoreLabel: "SPENT", Decimals: 2}}}},
		{Name: "old-plugin"},
	}
}

func TestReadIntegration(t *testing.T) {
	rdb := startRedis(t)
	checkRead(t, rdb, func() error { return rdb.FlushAll(t.Context()).Err() })
}

// On a cluster the keys of one view are spread over the masters: the
// report scans each (SCAN covers one node) and reads across slots.
func TestReadIntegrationCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	rdb := redistest.StartCluster(t, 3).Client()
	checkRead(t, rdb, func() error {
		return rdb.ForEachMaster(t.Context(), func(ctx context.Context, c *redis.Client) error { return c.FlushAll(ctx).Err() })
	})
}

func checkRead(t *testing.T, rdb redis.UniversalClient, flush func() error) {
	ctx := t.Context()
	for _, typ := range []string{"u8", "u5", "i16", "u32", "i64", "u63"} {
		t.Run(typ, func(t *testing.T) {
			if err := flush(); err != nil {
				t.Fatalf("flushall: %v", err)
			}
			bits, signed, err := counterType(typ)
			if err != nil {
				t.Fatal(err)
			}
			incr := func(key string, hour int, n int64) {
				t.Helper()
				// The real command the plugins send, not a Go encoder.
				if err := rdb.Do(ctx, "BITFIELD", key, "INCRBY", typ, (hour+1)*bits, n).Err(); err != nil {
					t.Fatalf("BITFIELD %s INCRBY %s: %v", key, typ, err)
				}
			}
			overall := make([]int64, 24)
			for _, w := range []struct {
				hour int
				n    int64
			}{{5, 100}, {3, 50}, {0, 300}, {23, 7}, {10, -5}, {10, 2}} {
				if w.n < 0 && !signed {
					continue
				}
				incr(histKey, w.hour, w.n)
				overall[w.hour] = wrap(overall[w.hour]+w.n, bits, signed)
			}
			incr(histKey+":"+athletics, 5, 8)
			incr(histKey+":"+athletics, 6, 4)
			incr(histKey+":"+swimming, 23, 2)
			// Keys that share a prefix but are of another type are not
			// metrics and must not break the report.
			rdb.HSet(ctx, histKey+":stray", "a", "b")
			rdb.Set(ctx, "invoices:stray", "x", 0)
			rdb.HIncrByFloat(ctx, summaryKey, athletics+salesSuffix, 245.50)
			rdb.HIncrByFloat(ctx, summaryKey, athletics+salesSuffix, 245.50)
			rdb.HIncrBy(ctx, summaryKey, athletics+ticketsSfx, 2)
			rdb.HIncrBy(ctx, summaryKey, athletics+ticketsSfx, 2)
			rdb.HIncrByFloat(ctx, summaryKey, swimming+salesSuffix, 64.10)
			rdb.HIncrBy(ctx, summaryKey, swimming+ticketsSfx, 2)
			rdb.HSet(ctx, summaryKey, "not a column", "x") // no suffix: no row
			for who, ids := range map[string][]string{
				"cust-00001": {"1", "2", "3"}, "cust-00002": {"4"}, "cust-00003": {"5"},
				"cust-00004": {"6", "7", "8"}, "cust-00005": {"9", "10"},
			} {
				for _, id := range ids {
					rdb.SAdd(ctx, "invoices:"+who, id)
				}
			}
			rdb.ZIncrBy(ctx, "top_customers", 12.5, "ann")
			rdb.ZIncrBy(ctx, "top_customers", 99, "bob")
			rdb.ZIncrBy(ctx, "top_customers", 1, "cy")

			s, err := Read(ctx, rdb, tutorialViews(typ))
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if len(s.Plugins) != 5 {
				t.Fatalf("%d plugins read, want 5", len(s.Plugins))
			}
			byHour := func(hours map[int]int64) []int64 {
				out := make([]int64, 24)
				for h, n := range hours {
					out[h] = wrap(n, bits, signed)
				}
				return out
			}
			sum := func(vs []int64) (n int64) {
				for _, v := range vs {
					n += v
				}
				return n
			}
			hist := s.Plugins[0].Views
			if want := []Series{{Values: overall, Total: sum(overall)}}; hist[0].Histogram == nil || hist[0].Histogram.PerKey || !reflect.DeepEqual(hist[0].Histogram.Series, want) {
				t.Errorf("overall histogram = %+v\nwant %+v", hist[0].Histogram, want)
			}
			ath, swim := byHour(map[int]int64{5: 8, 6: 4}), byHour(map[int]int64{23: 2})
			if want := []Series{{Name: athletics, Values: ath, Total: sum(ath)}, {Name: swimming, Values: swim, Total: sum(swim)}}; hist[1].Histogram == nil || !hist[1].Histogram.PerKey || !reflect.DeepEqual(hist[1].Histogram.Series, want) {
				t.Errorf("per-event histograms = %+v\nwant %+v", hist[1].Histogram, want)
			}
			wantTable := &TableData{RowLabel: "EVENT", Columns: []string{"TICKETS", "SALES"}, Rows: []Row{
				{Name: athletics, Values: []float64{4, 491}, Texts: []string{"4", "491.00"}},
				{Name: swimming, Values: []float64{2, 64.1}, Texts: []string{"2", "64.10"}},
			}, Total: []string{"6", "555.10"}}
			if got := s.Plugins[1].Views[0].Table; !reflect.DeepEqual(got, wantTable) {
				t.Errorf("table = %+v\nwant %+v", got, wantTable)
			}
			wantCount := &KeyCountData{SizeLabel: "INVOICES", KeysLabel: "CUSTOMERS", Keys: 5,
				Sizes: []SizeCount{{Size: 1, Keys: 2}, {Size: 2, Keys: 1}, {Size: 3, Keys: 2}}}
			if got := s.Plugins[2].Views[0].KeyCount; !reflect.DeepEqual(got, wantCount) {
				t.Errorf("key count = %+v\nwant %+v", got, wantCount)
			}
			wantTop := &LeaderboardData{MemberLabel: "CUSTOMER", ScoreLabel: "SPENT", Members: 3, Leaders: []Leader{
				{Member: "bob", Score: 99, Text: "99.00"}, {Member: "ann", Score: 12.5, Text: "12.50"}}}
			if got := s.Plugins[3].Views[0].Leaderboard; !reflect.DeepEqual(got, wantTop) {
				t.Errorf("leaderboard = %+v\nwant %+v", got, wantTop)
			}
			if typ == "u8" && overall[0] != 44 {
				t.Errorf("u8 counter incremented by 300 reads %d, want 44 (wrapped)", overall[0])
			}
			if typ != "u8" {
				return
			}
			var out strings.Builder
			if err := s.Render(&out); err != nil {
				t.Fatalf("Render: %v", err)
			}
			text := out.String()
			blocks := func(n int) string { return strings.Repeat("█", n) + strings.Repeat(" ", BarWidth-n) }
			for _, want := range []string{
				"Sales by hour of day (UTC), all events\n",
				"\n05h  " + blocks(50) + " 100\n",
				"\n03h  " + blocks(25) + " 50\n",
				"\n00h  " + blocks(22) + " 44\n", // 44/100 of 50
				"\n23h  " + blocks(4) + " 7\n",   // 3.5 rounds up
				"\n01h  " + blocks(0) + " 0\n",
				"\nSales by hour of day (UTC), per event: |00h..23h| total\n",
				"\nAthletics: Men's 100m Final       |     █▄                 |  12\n",
				"\nSwimming: Women's 200m Butterfly  |                       █|  2\n",
				"\nTotals per event\n",
				"\nEVENT                                TICKETS       SALES\n",
				"\nAthletics: Men's 100m Final                4      491.00\n",
				"\nSwimming: Women's 200m Butterfly           2       64.10\n",
				"\nTOTAL                                      6      555.10\n",
				"\nCustomers by number of invoices\nINVOICES  CUSTOMERS\n       1          2\n       2          1\n       3          2\ntotal customers: 5\n",
				"\nTop customers\n   #  CUSTOMER       SPENT\n   1  bob            99.00\n   2  ann            12.50\n(top 2 of 3)\n",
				"\n(plugins that declare no views: old-plugin)\n",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("rendered report lacks %q; report:\n%s", want, text)
				}
			}
		})
	}
}

func TestReadEmptyAndBad(t *testing.T) {
	rdb := startRedis(t)
	ctx := t.Context()
	s, err := Read(ctx, rdb, tutorialViews("u8"))
	if err != nil {
		t.Fatalf("Read of an empty database: %v", err)
	}
	var out strings.Builder
	if err := s.Render(&out); err != nil {
		t.Fatalf("Render: %v", err)
	}
	for _, want := range []string{
		"per event: |00h..23h| total\n(none yet)\n", "Totals per event\n(none yet)\n",
		"invoices\n(none yet)\n", "Top customers\n(none yet)\n",
		"\n12h  " + strings.Repeat(" ", BarWidth) + " 0\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("empty report lacks %q:\n%s", want, out.String())
		}
	}

	// A view that cannot be read carries why; the others are still read.
	rdb.HSet(ctx, summaryKey, athletics+salesSuffix, "lots")
	rdb.SAdd(ctx, histKey, "x")
	rdb.SAdd(ctx, "invoices:ann", "1")
	s, err = Read(ctx, rdb, tutorialViews("u8"))
	if err == nil || !strings.Contains(err.Error(), `"lots" is not a number`) || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("Read with a non-numeric total and a histogram key holding a set: err = %v", err)
	}
	if s == nil || s.Plugins[0].Views[0].Error == "" || s.Plugins[1].Views[0].Error == "" || s.Plugins[2].Views[0].KeyCount.Keys != 1 {
		t.Errorf("snapshot = %+v; want the bad views' errors and the good views read", s)
	}
}

func TestSparkline(t *testing.T) {
	for _, tc := range []struct {
		in   []int64
		want string
	}{
		{[]int64{0, 1, 2, 3, 4, 5, 6, 7, 8}, " ▁▂▃▄▅▆▇█"},
		{[]int64{0, 0}, "  "},
		{[]int64{-3, 1000, 1}, " █▁"},
		{nil, ""},
	} {
		if got := Sparkline(tc.in); got != tc.want {
			t.Errorf("Sparkline(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// startRedis runs a private redis-server for the test.
func startRedis(t *testing.T) *redis.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	return redistest.Start(t).Client()
}
