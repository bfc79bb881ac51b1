package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
)

// storeHistory stores n orders that every plugin has counted, and
// registers the plugins as enabled before them.
func storeHistory(b *testing.B, rdb *redis.Client, n int) {
	ctx := context.Background()
	if err := redistest.StoreCounted(ctx, rdb, orderPrefix, 0, n, plugins); err != nil {
		b.Fatal(err)
	}
	for _, p := range plugins {
		if err := rdb.HSet(ctx, keyspace.RegistryKey, p, time.Now().Add(-time.Hour).UnixMilli()).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThroughputWithHistory is issue #10's flat-cost check: the
// throughput of eventhost on a Redis that already holds BENCH_HISTORY
// (1,000,000) counted orders against an empty Redis, alternating round by
// round (BENCH_ROUNDS, default 3) on two redis-servers started alike. Each
// host start waits until its first catch-up is over, so the scan of the
// history is not timed (BenchmarkCatchUpHistory times it); what is
// timed is what an order costs once history is there. The naive program
// runs on both too: what it loses is what Redis itself loses to a bigger
// keyspace.
func BenchmarkThroughputWithHistory(b *testing.B) {
	n := envInt("BENCH_ORDERS", 50000)
	stored := envInt("BENCH_HISTORY", 1000000)
	rounds := envInt("BENCH_ROUNDS", 3)
	empty, full := redistest.Start(b), redistest.Start(b)
	emptyDB, fullDB := empty.Client(), full.Client()
	storeHistory(b, fullDB, stored)
	var onEmpty, onFull, naiveEmpty, naiveFull []usage
	for i := 0; i < b.N*rounds; i++ {
		// Each round adds its orders to the history: round i runs on
		// stored + 2·i·n orders.
		naiveEmpty = append(naiveEmpty, measure(b, emptyDB, empty.Addr, &naive{}, n, int64(i), true))
		naiveFull = append(naiveFull, measure(b, fullDB, full.Addr, &naive{}, n, int64(i)+1000, false))
		onEmpty = append(onEmpty, measure(b, emptyDB, empty.Addr, &subprocess{metrics: freeAddr(b), caughtUp: true}, n, int64(i)+2000, true))
		onFull = append(onFull, measure(b, fullDB, full.Addr, &subprocess{metrics: freeAddr(b), caughtUp: true}, n, int64(i)+3000, false))
	}
	e, f := medianUsage(onEmpty), medianUsage(onFull)
	ne, nf := medianUsage(naiveEmpty), medianUsage(naiveFull)
	var table strings.Builder
	b.ReportMetric(e.rate, "empty-orders/s")
	b.ReportMetric(f.rate, "history-orders/s")
	b.ReportMetric(f.rate/e.rate, "ratio")
	b.ReportMetric(nf.rate/ne.rate, "naive-ratio")
	fmt.Fprintf(&table, "throughput with history (%d orders, median of %d rounds, on two Redis servers in turn):\n", n, rounds)
	fmt.Fprintf(&table, "  %-44s %9s %9s   %s\n", "", "orders/s", "ratio", "CPU µs per order: Redis + benchmark process + host + plugins = total")
	row := func(name string, u usage, ratio string) {
		fmt.Fprintf(&table, "  %-44s %9.0f %9s   %s\n", name, u.rate, ratio, u.cpu())
	}
	row("eventhost, empty Redis", e, "")
	row(fmt.Sprintf("eventhost, %d counted orders stored", stored), f, fmt.Sprintf("%.2f", f.rate/e.rate))
	row("naive program, empty Redis", ne, "")
	row(fmt.Sprintf("naive program, %d orders stored", stored), nf, fmt.Sprintf("%.2f", nf.rate/ne.rate))
	fmt.Fprintf(&table, "  history / empty per round: eventhost %s; naive %s\n", ratios(onFull, onEmpty), ratios(naiveFull, naiveEmpty))
	b.Log(strings.TrimSuffix(table.String(), "\n"))
}
