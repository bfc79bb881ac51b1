package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/catchup"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/orders"
)

// storeCounted stores n orders that every plugin has counted (done markers
// set), with a Lua script, 20,000 per call.
var storeCounted = redis.NewScript(`
local from, n, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = from, from + n - 1 do
  local args = { prefix .. string.format('h%09d', i), 'ts', tostring(1627000000 + i % 1400000), 'qty', tostring(1 + i % 8),
    'cost', '12.50', 'event', 'Judo', 'who', 'w' .. (i % 5000) }
  for j = 4, #ARGV do
    args[#args + 1] = ARGV[j]
    args[#args + 1] = '1700000000000000'
  end
  redis.call('HSET', unpack(args))
end
return n`)

// storeHistory stores n orders that every plugin has counted, and
// registers the plugins as enabled before them.
func storeHistory(b *testing.B, rdb *redis.Client, n int) {
	ctx := context.Background()
	args := []any{0, 0, orderPrefix}
	for _, p := range plugins {
		args = append(args, orders.DoneField(p))
	}
	for from := 0; from < n; from += 20000 {
		args[0], args[1] = from, min(20000, n-from)
		if err := storeCounted.Run(ctx, rdb, nil, args...).Err(); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range plugins {
		if err := rdb.HSet(ctx, catchup.RegistryKey, p, time.Now().Add(-time.Hour).UnixMilli()).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCatchUpHistory stores BENCH_HISTORY (1,000,000) orders that every
// plugin has counted and measures what that history costs the Pub/Sub
// source: the time from host start to ready (/readyz), a reconnect's
// catch-up (CLIENT KILL TYPE pubsub; eventhost_catchup_seconds), and the
// longest single Redis call of the scan (SLOWLOG, calls over 1 ms).
func BenchmarkCatchUpHistory(b *testing.B) {
	n := envInt("BENCH_HISTORY", 1000000)
	srv := redistest.Start(b)
	rdb := srv.Client()
	ctx := context.Background()
	storeHistory(b, rdb, n)
	for b.Loop() {
		rdb.ConfigSet(ctx, "slowlog-log-slower-than", "1000")
		rdb.SlowLogReset(ctx)
		metricsAddr := freeAddr(b)
		host := &subprocess{metrics: metricsAddr}
		start := time.Now()
		host.start(b, srv.Addr)
		waitReady(b, metricsAddr)
		ready := time.Since(start)
		first := catchUpSeconds(b, metricsAddr)

		if err := rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Minute)
		for catchUpRuns(b, metricsAddr) < 2 {
			if time.Now().After(deadline) {
				b.Fatal("no catch-up within 5 minutes of the reconnect")
			}
			time.Sleep(10 * time.Millisecond)
		}
		reconnect := catchUpSeconds(b, metricsAddr) - first
		longest := longestScanCall(b, rdb)
		host.stop(b)
		b.ReportMetric(ready.Seconds(), "ready-s")
		b.ReportMetric(first, "start-catchup-s")
		b.ReportMetric(reconnect, "reconnect-catchup-s")
		b.ReportMetric(float64(longest.Microseconds())/1000, "longest-call-ms")
		fmt.Printf("history of %d counted orders: host start to ready %s (its catch-up %.3f s), reconnect catch-up %.3f s, longest scan call %s\n",
			n, ready.Round(time.Millisecond), first, reconnect, longest)
	}
}

// waitReady polls /readyz until it answers 200.
func waitReady(b *testing.B, addr string) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("eventhost not ready within 5 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metric returns the value of the series named name (labels included).
func metric(b *testing.B, addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func catchUpSeconds(b *testing.B, addr string) float64 {
	return metric(b, addr, "eventhost_catchup_seconds_sum")
}

func catchUpRuns(b *testing.B, addr string) float64 {
	return metric(b, addr, `eventhost_catchup_runs_total{result="done"}`)
}

// longestScanCall is the longest call in SLOWLOG that scanned the order
// keys (its arguments hold the MATCH pattern).
func longestScanCall(b *testing.B, rdb *redis.Client) time.Duration {
	logs, err := rdb.SlowLogGet(context.Background(), -1).Result()
	if err != nil {
		b.Fatal(err)
	}
	var longest time.Duration
	for _, l := range logs {
		for _, a := range l.Args {
			if strings.HasPrefix(a, orderPrefix) && strings.HasSuffix(a, "*") {
				longest = max(longest, l.Duration)
			}
		}
	}
	return longest
}
