package bench

import (
	"fmt"
	"testing"

	"github.com/eventhost/eventhost/host/internal/redistest"
)

// BenchmarkThroughputWithHistory is issue #10's flat-cost check: the
// throughput of eventhost on a Redis that already holds BENCH_HISTORY
// (1,000,000) counted orders against an empty Redis, alternating round by
// round (BENCH_ROUNDS, default 3) on two redis-servers started alike. Each
// host start waits until the host is ready, so the start's catch-up scan of
// the history is not timed (BenchmarkCatchUpHistory times it); what is
// timed is what an order costs once history is there.
func BenchmarkThroughputWithHistory(b *testing.B) {
	n := envInt("BENCH_ORDERS", 50000)
	stored := envInt("BENCH_HISTORY", 1000000)
	rounds := envInt("BENCH_ROUNDS", 3)
	empty, full := redistest.Start(b), redistest.Start(b)
	emptyDB, fullDB := empty.Client(), full.Client()
	storeHistory(b, fullDB, stored)
	var onEmpty, onFull []usage
	for i := 0; i < b.N*rounds; i++ {
		onEmpty = append(onEmpty, measure(b, emptyDB, empty.Addr, &subprocess{metrics: freeAddr(b), waitReady: true}, n, int64(i), true))
		// Each round adds its n orders to the history: round i runs on
		// stored + i·n orders.
		onFull = append(onFull, measure(b, fullDB, full.Addr, &subprocess{metrics: freeAddr(b), waitReady: true}, n, int64(i)+1000, false))
	}
	e, f := medianUsage(onEmpty), medianUsage(onFull)
	b.ReportMetric(e.rate, "empty-orders/s")
	b.ReportMetric(f.rate, "history-orders/s")
	b.ReportMetric(f.rate/e.rate, "ratio")
	fmt.Printf("throughput with history (%d orders, median of %d rounds, eventhost on two Redis servers in turn):\n", n, rounds)
	fmt.Printf("  %-38s %9s %9s   %s\n", "", "orders/s", "ratio", "CPU µs per order: Redis + benchmark process + host + plugins = total")
	fmt.Printf("  %-38s %9.0f %9s   %s\n", "empty Redis", e.rate, "", e.cpu())
	fmt.Printf("  %-38s %9.0f %9.2f   %s\n", fmt.Sprintf("%d counted orders stored", stored), f.rate, f.rate/e.rate, f.cpu())
	fmt.Printf("  history / empty per round: %s\n", ratios(onFull, onEmpty))
}
