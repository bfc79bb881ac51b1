package e2e

import (
	"context"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/publish"
)

// The expected state is built here from the tutorial's rules, never by
// calling plugin code: a Go model for the integer state, and for the float
// totals a literal replay of the tutorial's listeners against another
// database, since HINCRBYFLOAT sums in Redis' long double.

// modelState is what the three tutorial listeners leave in Redis for os, with
// histogram counters of the given width that wrap (the tutorial's u8 does).
// Float totals are left out; see replayTutorial.
func modelState(os []publish.Order, bits int) map[string]value {
	hist := map[string]map[int]uint64{} // key -> hour -> counter
	sets := map[string][]string{}
	tickets := map[string]int64{}
	mask := uint64(1)<<bits - 1
	for _, o := range os {
		hour := time.Unix(o.TS, 0).UTC().Hour()
		for _, k := range []string{"sales_histogram:time_of_day", "sales_histogram:time_of_day:" + o.Event} {
			if hist[k] == nil {
				hist[k] = map[int]uint64{}
			}
			hist[k][hour] = (hist[k][hour] + uint64(o.Qty)) & mask
		}
		sets["sales:"+o.Event] = append(sets["sales:"+o.Event], o.ID)
		sets["invoices:"+o.Who] = append(sets["invoices:"+o.Who], o.ID)
		tickets[o.Event] += o.Qty
	}
	out := map[string]value{}
	for k, hours := range hist {
		maxHour := 0
		for h := range hours {
			maxHour = max(maxHour, h)
		}
		// BITFIELD grows the string just enough to hold the highest counter written.
		buf := make([]byte, ((maxHour+2)*bits+7)/8)
		for h, v := range hours {
			putBits(buf, (h+1)*bits, bits, v)
		}
		out[k] = value{Type: "string", Data: string(buf)}
	}
	for k, members := range sets {
		sort.Strings(members)
		out[k] = value{Type: "set", Data: strings.Join(dedupe(members), "\n")}
	}
	var fields []string
	for ev, n := range tickets {
		fields = append(fields, ev+":total_tickets_sold="+strconv.FormatInt(n, 10))
	}
	sort.Strings(fields)
	out["sales_summary"] = value{Type: "hash", Data: strings.Join(fields, "\n")}
	return out
}

// putBits writes v as a big-endian field of width bits at bit offset off, as
// BITFIELD lays it out.
func putBits(buf []byte, off, bits int, v uint64) {
	for i := 0; i < bits; i++ {
		bit := (v >> (bits - 1 - i)) & 1
		pos := off + i
		if bit == 1 {
			buf[pos/8] |= 0x80 >> (pos % 8)
		} else {
			buf[pos/8] &^= 0x80 >> (pos % 8)
		}
	}
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// replayTutorial runs the tutorial's three listeners, command for command,
// over os in order against rdb (another database of the same server).
func replayTutorial(t *testing.T, rdb redis.Cmdable, os []publish.Order, counter string) {
	t.Helper()
	ctx := context.Background()
	bits, _ := strconv.Atoi(counter[1:])
	for start := 0; start < len(os); start += 500 {
		p := rdb.Pipeline()
		for _, o := range os[start:min(start+500, len(os))] {
			hour := time.Unix(o.TS, 0).UTC().Hour()
			vals := []any{"INCRBY", counter, (hour + 1) * bits, o.Qty}
			p.Do(ctx, append([]any{"BITFIELD", "sales_histogram:time_of_day"}, vals...)...)
			p.Do(ctx, append([]any{"BITFIELD", "sales_histogram:time_of_day:" + o.Event}, vals...)...)
			p.SAdd(ctx, "sales:"+o.Event, o.ID)
			p.HIncrByFloat(ctx, "sales_summary", o.Event+":total_sales", mustFloat(t, o.Cost))
			p.HIncrBy(ctx, "sales_summary", o.Event+":total_tickets_sold", o.Qty)
			p.SAdd(ctx, "invoices:"+o.Who, o.ID)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("replay tutorial: %v", err)
		}
	}
}

func mustFloat(t *testing.T, s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("cost %q: %v", s, err)
	}
	return f
}

// checkSalesTotals checks the replayed float totals against exact cent sums,
// so the replay itself is known to be right.
func checkSalesTotals(t *testing.T, ref map[string]value, os []publish.Order) {
	t.Helper()
	cents := map[string]int64{}
	for _, o := range os {
		c, err := strconv.ParseInt(strings.Replace(o.Cost, ".", "", 1), 10, 64)
		if err != nil {
			t.Fatalf("cost %q is not a 2-decimal amount", o.Cost)
		}
		cents[o.Event] += c
	}
	got := map[string]string{}
	for _, line := range strings.Split(ref["sales_summary"].Data, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasSuffix(k, ":total_sales") {
			got[strings.TrimSuffix(k, ":total_sales")] = v
		}
	}
	if len(got) != len(cents) {
		t.Fatalf("replay has %d total_sales fields, want %d", len(got), len(cents))
	}
	for ev, c := range cents {
		f, _ := strconv.ParseFloat(got[ev], 64)
		if math.Abs(f*100-float64(c)) > 0.5 {
			t.Errorf("%s:total_sales = %s, exact sum is %d cents", ev, got[ev], c)
		}
	}
}

// withoutFloats drops the total_sales fields, which only the replay knows.
func withoutFloats(state map[string]value) map[string]value {
	out := map[string]value{}
	for k, v := range state {
		if k == "sales_summary" {
			var keep []string
			for _, line := range strings.Split(v.Data, "\n") {
				if !strings.Contains(line, ":total_sales=") {
					keep = append(keep, line)
				}
			}
			v.Data = strings.Join(keep, "\n")
		}
		out[k] = v
	}
	return out
}
