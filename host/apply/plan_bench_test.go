package apply

import (
	"strconv"
	"testing"

	"github.com/eventhost/eventhost/sdk"
)

// tutorialBatch is a tutorial-like batch of perBatch orders, each written
// by three plugins: a histogram (two BITFIELD u8 counters), a summary (a
// set member, a float and an integer total per event) and invoices (a set
// member per customer).
func tutorialBatch(perBatch int) ([]Write, []int) {
	var writes []Write
	for o := 0; o < perBatch; o++ {
		id := strconv.Itoa(o)
		key := "purchase_order_details:" + id
		event := "event-" + strconv.Itoa(o%30)
		var hist, summary, invoices sdk.Effects
		off := 8 * (1 + int64(o%24))
		hist.BitfieldIncrBy("sales_histogram:time_of_day", "u8", off, 3, sdk.OverflowWrap)
		hist.BitfieldIncrBy("sales_histogram:time_of_day:"+event, "u8", off, 3, sdk.OverflowWrap)
		summary.SAdd("sales:"+event, id)
		summary.HIncrByFloat("sales_summary", event+":total_sales", 12.5)
		summary.HIncrBy("sales_summary", event+":total_tickets_sold", 3)
		invoices.SAdd("invoices:cust-"+strconv.Itoa(o*7%5000), id)
		for _, w := range []struct {
			plugin string
			e      sdk.Effects
		}{{"sales-histogram", hist}, {"events-summary", summary}, {"customer-invoices", invoices}} {
			writes = append(writes, Write{OrderKey: key, Marker: "eventhost:done:" + w.plugin, Effects: w.e.List(), Plugin: w.plugin, OrderID: id})
		}
	}
	live := make([]int, len(writes))
	for i := range live {
		live[i] = i
	}
	return writes, live
}

// BenchmarkPlanAndEncode measures the host's CPU for laying out one
// tutorial-like batch of 512 orders (three plugins) for the apply script:
// coalescing, checks and arguments, up to the EVALSHA command go-redis
// sends as it is (Applier.run), without Redis. The plan is reused from
// batch to batch, as Applier.attempt does.
func BenchmarkPlanAndEncode(b *testing.B) {
	const perBatch = 512
	writes, live := tutorialBatch(perBatch)
	a := New(nil, "eventhost:deadletter")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		refused := map[int]leftOut{}
		p := a.newPlan(writes, live, a.dlStream, nil, refused)
		cmd := a.encode(p, nil, Batch{})
		if len(cmd) == 0 || len(refused) > 0 {
			b.Fatal("empty plan")
		}
		a.releasePlan(p)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBatch)/1000, "us/order")
}

// BenchmarkClusterPlanAndEncode is the same batch on a Redis Cluster: cut
// into hash slots' shares, each share planned and laid out for
// cluster.lua's write, without Redis.
func BenchmarkClusterPlanAndEncode(b *testing.B) {
	const perBatch = 512
	writes, live := tutorialBatch(perBatch)
	a := New(nil, "eventhost:deadletter")
	c := &clusterApply{tags: slotTags()}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := &clusterRun{a: a, c: c, writes: writes, shares: map[int]*slotShare{}, slotsOf: map[int][]int{},
			recorded: map[int][]int{}, landed: map[int]bool{}, refused: map[int]leftOut{}}
		r.share(live)
		n := 0
		for _, s := range r.plan() {
			if sh := r.shares[s]; sh.plainKey == "" {
				n += len(encodeShare(sh.plan, "write", "1700000000000000", "1700000005000000"))
			}
		}
		r.releasePlans()
		if n == 0 || len(r.refused) > 0 {
			b.Fatal("empty plan")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBatch)/1000, "us/order")
}
