package orders_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/orders"
)

// BenchmarkLoad loads one batch of 512 tutorial-shaped orders from a private
// redis-server, as the pipeline does for every batch: one pipelined round
// trip, then parsing and checking. Run with -benchmem; the allocations are
// the deterministic figure (allocs/order and B/order), the time is not.
//
//	go test ./host/orders -run '^$' -bench Load -benchmem
func BenchmarkLoad(b *testing.B) {
	ctx := b.Context()
	rdb := redistest.Start(b).Client()
	const prefix, n = "purchase_order_details:", 512
	pipe := rdb.Pipeline()
	refs := make([]orders.Ref, n)
	for i := range refs {
		id := fmt.Sprintf("2020-%07d", i)
		refs[i] = orders.Ref{ID: id, Channel: "purchase_orders"}
		pipe.HSet(ctx, prefix+id, "ts", 1626998400+i, "qty", 1+i%8, "cost", fmt.Sprintf("%d.%02d", 50+i%900, i%100),
			"event", fmt.Sprintf("Athletics: Men's %dm Final", 100*(1+i%15)), "who", fmt.Sprintf("cust-%d", i%5000))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	l := orders.NewLoader(rdb, prefix)
	load := func(b *testing.B, load func() ([]orders.Loaded, []orders.Rejected, error)) {
		b.ReportAllocs()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for b.Loop() {
			loaded, rejected, err := load()
			if err != nil || len(loaded) != n || len(rejected) != 0 {
				b.Fatalf("loaded %d, rejected %v, err %v", len(loaded), rejected, err)
			}
		}
		runtime.ReadMemStats(&after)
		// The same figures per order, next to -benchmem's per batch.
		total := float64(b.N * n)
		b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/order")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/total, "B/order")
	}
	// Load makes the slice of loaded orders; the pipeline passes its own
	// back batch after batch (LoadAppend).
	b.Run("Load", func(b *testing.B) {
		load(b, func() ([]orders.Loaded, []orders.Rejected, error) { return l.Load(ctx, refs) })
	})
	loadAppend := func(l *orders.Loader) func(b *testing.B) {
		return func(b *testing.B) {
			var reused []orders.Loaded
			load(b, func() ([]orders.Loaded, []orders.Rejected, error) {
				clear(reused)
				loaded, rejected, err := l.LoadAppend(ctx, refs, reused[:0])
				reused = loaded
				return loaded, rejected, err
			})
		}
	}
	b.Run("LoadAppend", loadAppend(l))
	// The same through go-redis' HGETALL, a map per order, as a cluster
	// client loads (a Ring is no *redis.Client either): the raw read's
	// gain, measured in the same run.
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"one": rdb.Options().Addr}})
	defer ring.Close()
	b.Run("LoadAppendMaps", loadAppend(orders.NewLoader(ring, prefix)))
}
