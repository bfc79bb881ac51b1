package report

import (
	"github.com/eventhost/eventhost/host/internal/redistest"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestParseCounter(t *testing.T) {
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
		bits, signed, err := ParseCounter(tc.typ)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseCounter(%q) = %d, %v; want an error", tc.typ, bits, signed)
			}
			continue
		}
		if err != nil || bits != tc.bits || signed != tc.signed {
			t.Errorf("ParseCounter(%q) = %d, %v, %v; want %d, %v", tc.typ, bits, signed, err, tc.bits, tc.signed)
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
)

func TestReadIntegration(t *testing.T) {
	rdb := startRedis(t)
	ctx := t.Context()
	for _, typ := range []string{"u8", "u5", "i16", "u32", "i64", "u63"} {
		t.Run(typ, func(t *testing.T) {
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatalf("flushall: %v", err)
			}
			bits, signed, err := ParseCounter(typ)
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
			var overall [Hours]int64
			for _, w := range []struct {
				hour int
				n    int64
			}{{5, 100}, {3, 50}, {0, 300}, {23, 7}, {10, -5}, {10, 2}} {
				if w.n < 0 && !signed {
					continue
				}
				incr(HistogramKey, w.hour, w.n)
				overall[w.hour] = wrap(overall[w.hour]+w.n, bits, signed)
			}
			incr(HistogramPrefix+athletics, 5, 8)
			incr(HistogramPrefix+athletics, 6, 4)
			incr(HistogramPrefix+swimming, 23, 2)

			// Keys that share a prefix but are of another type are not
			// metrics and must not break the report.
			rdb.HSet(ctx, HistogramPrefix+"stray", "a", "b")
			rdb.Set(ctx, InvoicesPrefix+"stray", "x", 0)

			rdb.HIncrByFloat(ctx, SummaryKey, athletics+salesSuffix, 245.50)
			rdb.HIncrByFloat(ctx, SummaryKey, athletics+salesSuffix, 245.50)
			rdb.HIncrBy(ctx, SummaryKey, athletics+ticketsSuffix, 2)
			rdb.HIncrBy(ctx, SummaryKey, athletics+ticketsSuffix, 2)
			rdb.HIncrByFloat(ctx, SummaryKey, swimming+salesSuffix, 64.10)
			rdb.HIncrBy(ctx, SummaryKey, swimming+ticketsSuffix, 2)

			for who, ids := range map[string][]string{
				"cust-00001": {"1", "2", "3"}, "cust-00002": {"4"}, "cust-00003": {"5"},
				"cust-00004": {"6", "7", "8"}, "cust-00005": {"9", "10"},
			} {
				for _, id := range ids {
					rdb.SAdd(ctx, InvoicesPrefix+who, id)
				}
			}

			layout := Layout{Counter: typ}
			if typ == "u8" {
				layout = Layout{} // the default
			}
			r, err := Read(ctx, rdb, layout)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if typ == "u8" && r.Overall[0] != 44 {
				t.Errorf("u8 counter incremented by 300 reads %d, want 44 (wrapped)", r.Overall[0])
			}
			if r.Overall != overall {
				t.Errorf("Overall = %v\nwant      %v", r.Overall, overall)
			}
			var ath, swim [Hours]int64
			ath[5], ath[6], swim[23] = 8, 4, 2
			for h := range Hours {
				ath[h], swim[h] = wrap(ath[h], bits, signed), wrap(swim[h], bits, signed)
			}
			if want := map[string][Hours]int64{athletics: ath, swimming: swim}; !reflect.DeepEqual(r.PerEvent, want) {
				t.Errorf("PerEvent = %v\nwant %v", r.PerEvent, want)
			}
			wantTotals := []EventTotal{
				{Event: athletics, Sales: 491, SalesText: "491", Tickets: 4},
				{Event: swimming, Sales: 64.1, SalesText: "64.1", Tickets: 2},
			}
			if !reflect.DeepEqual(r.Totals, wantTotals) {
				t.Errorf("Totals = %+v\nwant %+v", r.Totals, wantTotals)
			}
			if want := map[int64]int64{1: 2, 2: 1, 3: 2}; !reflect.DeepEqual(r.InvoiceCounts, want) || r.Customers != 5 {
				t.Errorf("InvoiceCounts = %v, Customers = %d; want %v, 5", r.InvoiceCounts, r.Customers, want)
			}

			if typ != "u8" {
				return
			}
			var out strings.Builder
			if err := r.Render(&out); err != nil {
				t.Fatalf("Render: %v", err)
			}
			text := out.String()
			blocks := func(n int) string { return strings.Repeat("█", n) + strings.Repeat(" ", BarWidth-n) }
			for _, want := range []string{
				"\n05h  " + blocks(50) + " 100\n",
				"\n03h  " + blocks(25) + " 50\n",
				"\n00h  " + blocks(22) + " 44\n", // 44/100 of 50
				"\n23h  " + blocks(4) + " 7\n",   // 3.5 rounds up
				"\n01h  " + blocks(0) + " 0\n",
				"\nAthletics: Men's 100m Final       |     █▄                 |  12\n",
				"\nSwimming: Women's 200m Butterfly  |                       █|  2\n",
				"\nEVENT                                TICKETS           SALES\n",
				"\nAthletics: Men's 100m Final                4          491.00\n",
				"\nSwimming: Women's 200m Butterfly           2           64.10\n",
				"\nTOTAL                                      6          555.10\n",
				"\n       1          2\n       2          1\n       3          2\ntotal customers: 5\n",
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
	r, err := Read(ctx, rdb, Layout{})
	if err != nil {
		t.Fatalf("Read of an empty database: %v", err)
	}
	if r.Overall != [Hours]int64{} || len(r.PerEvent) != 0 || len(r.Totals) != 0 || len(r.InvoiceCounts) != 0 || r.Customers != 0 {
		t.Errorf("empty database gave %+v", r)
	}
	var out strings.Builder
	if err := r.Render(&out); err != nil {
		t.Fatalf("Render: %v", err)
	}
	for _, want := range []string{"(no per-event histograms)", "(no sales summary)", "(no invoices)", "\n12h  " + strings.Repeat(" ", BarWidth) + " 0\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("empty report lacks %q:\n%s", want, out.String())
		}
	}

	if _, err := Read(ctx, rdb, Layout{Counter: "u64"}); err == nil {
		t.Error("Read with counter u64: no error")
	}
	rdb.HSet(ctx, SummaryKey, athletics+salesSuffix, "lots")
	if _, err := Read(ctx, rdb, Layout{}); err == nil || !strings.Contains(err.Error(), "lots") {
		t.Errorf("Read with a non-numeric total: err = %v", err)
	}
	rdb.Del(ctx, SummaryKey)
	rdb.SAdd(ctx, HistogramKey, "x")
	if _, err := Read(ctx, rdb, Layout{}); err == nil {
		t.Error("Read with the histogram key holding a set: no error")
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
