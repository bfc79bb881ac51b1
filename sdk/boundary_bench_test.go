package sdk

import (
	"context"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

// handlerPlugin is a plugin made of a Handle function.
type handlerPlugin func(Order, *Effects) error

func (handlerPlugin) Describe() Description              { return Description{Name: "bench"} }
func (handlerPlugin) Configure(Config) error             { return nil }
func (h handlerPlugin) Handle(o Order, e *Effects) error { return h(o, e) }

// tutorialPlugins write what the bundled plugins write for an order, with
// config.hcl's settings (sdk cannot import them).
var tutorialPlugins = map[string]handlerPlugin{
	"sales-histogram": func(o Order, out *Effects) error {
		off := int64(o.Time().Hour()+1) * 32
		out.BitfieldIncrBy("sales_histogram:time_of_day", "u32", off, o.Qty, OverflowSat)
		out.BitfieldIncrBy(out.Concat("sales_histogram:time_of_day:", o.Event), "u32", off, o.Qty, OverflowSat)
		return nil
	},
	"events-summary": func(o Order, out *Effects) error {
		out.SAdd(out.Concat("sales:", o.Event), o.ID)
		out.HIncrByFloat("sales_summary", out.Concat(o.Event, ":total_sales"), o.Cost)
		out.HIncrBy("sales_summary", out.Concat(o.Event, ":total_tickets_sold"), o.Qty)
		return nil
	},
	"customer-invoices": func(o Order, out *Effects) error {
		out.SAdd(out.Concat("invoices:", o.Who), o.ID)
		return nil
	},
}

// benchOrders is a batch like the throughput benchmark's.
func benchOrders(n int) []Order {
	events := []string{"Judo", "Archery", "Swimming", "Fencing", "Rowing"}
	orders := make([]Order, n)
	for i := range orders {
		orders[i] = Order{
			ID: "7-" + strconv.Itoa(1000000+i), Channel: "purchase_orders",
			TS: time.Date(2021, 7, 24, i%24, 0, 0, 0, time.UTC).Unix(), Qty: int64(1 + i%8), Cost: 12.5 * float64(1+i%8),
			Event: events[i%len(events)], Who: "customer" + strconv.Itoa(i%5000),
		}
	}
	return orders
}

// BenchmarkBoundary measures one batch of 512 orders crossing the plugin
// boundary, without the transport, for each bundled plugin: the host's side
// (encode the request, decode the answer) and the plugin's (decode the
// request, run Handle, encode the answer), protobuf marshalling included.
// ns/order and allocs/order are per order of the batch.
func BenchmarkBoundary(b *testing.B) {
	const n = 512
	orders := benchOrders(n)
	for _, name := range []string{"sales-histogram", "events-summary", "customer-invoices"} {
		srv := newServer(tutorialPlugins[name])
		reqBytes, err := proto.Marshal(ProcessRequestToProto(orders, true))
		if err != nil {
			b.Fatal(err)
		}
		resp, err := srv.Process(context.Background(), ProcessRequestToProto(orders, true))
		if err != nil {
			b.Fatal(err)
		}
		respBytes, err := proto.Marshal(resp)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/host", func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuTime(b)
			// The host's dispatcher reuses a packed batch's storage
			// once its calls returned, and the storage answers are
			// decoded into once the batch is applied.
			var packed []byte
			var ends []int
			var store AnswerStore
			for b.Loop() {
				packed, ends = PackOrders(packed[:0], orders, ends[:0])
				if _, err := proto.Marshal(&pluginv1.ProcessRequest{PackedOrders: packed, PackedAnswer: true}); err != nil {
					b.Fatal(err)
				}
				var r pluginv1.ProcessResponse
				if err := proto.Unmarshal(respBytes, &r); err != nil {
					b.Fatal(err)
				}
				store.Reset()
				if res := store.ResultsFromProto(&r, n); len(res[n-1].Effects) == 0 {
					b.Fatal("no effects")
				}
			}
			perOrder(b, n, cpu)
		})
		b.Run(name+"/plugin", func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuTime(b)
			for b.Loop() {
				var req pluginv1.ProcessRequest
				if err := proto.Unmarshal(reqBytes, &req); err != nil {
					b.Fatal(err)
				}
				resp, err := srv.Process(context.Background(), &req)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := proto.Marshal(resp); err != nil {
					b.Fatal(err)
				}
			}
			perOrder(b, n, cpu)
		})
	}
}

// perOrder reports the loop's time per order of a batch of n, and the
// process' CPU time since cpu (cpuTime) per order: garbage collection on
// other threads included, and less sensitive than the time to other
// processes on a shared machine.
func perOrder(b *testing.B, n int, cpu time.Duration) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/order")
	b.ReportMetric(float64((cpuTime(b)-cpu).Nanoseconds())/float64(b.N*n), "cpu-ns/order")
}
