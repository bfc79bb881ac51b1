package dispatch_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/eventhost/eventhost/host/dispatch"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/client"
)

// canned answers every batch with the same results, allocating nothing, so
// that the benchmark measures the dispatcher alone.
type canned struct {
	name    string
	results []sdk.Result
}

func (c *canned) Name() string { return c.name }

func (c *canned) Process(_ context.Context, os []sdk.Order) ([]sdk.Result, error) {
	return c.results[:len(os)], nil
}

func (c *canned) ProcessBatch(_ context.Context, b client.Batch, _ *sdk.AnswerStore) ([]sdk.Result, error) {
	return c.results[:b.Len()], nil
}

// BenchmarkDispatch measures the dispatcher's own work for a batch of 512
// orders going to three plugins, the outcome released once used, as the
// pipeline does once the batch is applied.
func BenchmarkDispatch(b *testing.B) {
	const n = 512
	var targets []dispatch.Target
	for _, name := range []string{"a", "b", "c"} {
		c := &canned{name: name, results: make([]sdk.Result, n)}
		for i := range c.results {
			c.results[i].Effects = []sdk.Effect{{Command: "SADD", Key: name, Args: []string{strconv.Itoa(i)}}}
		}
		targets = append(targets, target(c))
	}
	d := dispatch.New(targets, func(id string) string { return "purchase_order_details:" + id })
	loaded := make([]orders.Loaded, n)
	for i := range loaded {
		id := strconv.Itoa(1000000 + i)
		loaded[i] = orders.Loaded{Order: sdk.Order{ID: id, Channel: "c", Event: "Judo", Who: "ann"}, Ref: orders.Ref{ID: id, Channel: "c"}, Key: "purchase_order_details:" + id}
	}
	b.ReportAllocs()
	for b.Loop() {
		out, err := d.Dispatch(context.Background(), loaded)
		if err != nil || len(out.Writes) != 3*n {
			b.Fatal(err, len(out.Writes))
		}
		out.Release()
	}
}
