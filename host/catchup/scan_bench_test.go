package catchup_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/catchup"
	"github.com/eventhost/eventhost/host/internal/redistest"
)

// storeCounted stores n orders every plugin of ARGV[4:] has counted, in
// scanOnly walks the whole keyspace like scan.lua, with the same MATCH and
// COUNT, but reads nothing per key: the floor under any server-side scan.
var scanOnly = redis.NewScript(`
local cursor, n = '0', 0
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', ARGV[2])
  cursor = page[1]
  n = n + #page[2]
until cursor == '0'
return n`)

// BenchmarkScanPerKey measures what a catch-up scan costs per stored order
// when every plugin has counted every order (the common case: nothing to
// find): Redis CPU time per key (INFO cpu), wall time per key, and the
// longest script call; and, as the floor, the Redis CPU per key of SCAN
// alone. BENCH_SCAN_KEYS orders (default 200,000) are stored.
func BenchmarkScanPerKey(b *testing.B) {
	n := 200000
	if v, err := strconv.Atoi(os.Getenv("BENCH_SCAN_KEYS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	rdb := redistest.Start(b).Client()
	plugins := []string{"sales-histogram", "events-summary", "customer-invoices"}
	var wants []catchup.Want
	for _, p := range plugins {
		wants = append(wants, catchup.Want{Plugin: p})
	}
	if err := redistest.StoreCounted(ctx, rdb, prefix, 0, n, plugins); err != nil {
		b.Fatal(err)
	}
	s := catchup.NewScanner(rdb, prefix)
	var keys int
	var longest, wall time.Duration
	cpu := 0.0
	for b.Loop() {
		before := redisCPU(b, rdb)
		start := time.Now()
		st, err := s.Scan(ctx, wants, func([]catchup.Unfinished) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		wall += time.Since(start)
		cpu += redisCPU(b, rdb) - before
		if st.Keys != n || st.Unfinished != 0 {
			b.Fatalf("scan saw %d keys, %d unfinished; want %d, 0", st.Keys, st.Unfinished, n)
		}
		keys += st.Keys
		longest = max(longest, st.Longest)
	}
	before := redisCPU(b, rdb)
	if err := scanOnly.Run(ctx, rdb, nil, prefix+"*", 1000).Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric((redisCPU(b, rdb)-before)*1e6/float64(n), "scan-only-redis-cpu-us/key")
	b.ReportMetric(cpu*1e6/float64(keys), "redis-cpu-us/key")
	b.ReportMetric(float64(wall.Microseconds())/float64(keys), "wall-us/key")
	b.ReportMetric(float64(longest.Microseconds())/1000, "longest-call-ms")
}

// redisCPU is Redis' CPU time so far, user and system, in seconds.
func redisCPU(b *testing.B, rdb *redis.Client) float64 {
	cpu, err := redistest.CPU(context.Background(), rdb)
	if err != nil {
		b.Fatal(err)
	}
	return cpu
}
