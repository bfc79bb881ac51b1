package apply

import (
	"strconv"
	"testing"

	"github.com/eventhost/eventhost/sdk"
)

// BenchmarkPlanAndEncode measures the host's CPU for laying out one
// tutorial-like batch of 512 orders (three plugins) for the apply script:
// coalescing, checks and arguments, without Redis.
func BenchmarkPlanAndEncode(b *testing.B) {
	const perBatch = 512
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
	a := New(nil, "eventhost:deadletter", 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		refused := map[int]leftOut{}
		p := newPlan(writes, live, a.dlStream, nil, refused)
		argv := a.encode(p, nil, Batch{})
		if len(argv) == 0 || len(refused) > 0 {
			b.Fatal("empty plan")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBatch)/1000, "us/order")
}
