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
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
)

// storeCounted stores n orders that every plugin has counted (done markers
// storeStream appends entries {id: h<n>} for ARGV[2] orders from ARGV[1] to
// the stream KEYS[1], as the stream source's producer would have.
var storeStream = redis.NewScript(`
local from, n = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = from, from + n - 1 do
  redis.call('XADD', KEYS[1], '*', 'id', string.format('h%09d', i))
end
return n`)

// BenchmarkCatchUpHistory stores BENCH_HISTORY (1,000,000) orders that every
// plugin has counted, and a stream holding all of their ids, read and
// acknowledged by the group "eventhost", then measures what that history
// costs each source, in one run:
//
//   - start → ready: from launching the host (binaries already built) to
//     /readyz 200;
//   - the Pub/Sub catch-up scan at that start and after a reconnect (the
//     host's subscriber connection killed; for the stream, its blocked
//     XREADGROUP connection), and the longest scan call (SLOWLOG);
//   - reconnect → missed order applied: an order stored and announced right
//     after the kill, while nothing listens, until its effects are applied;
//   - live orders' p99 while a catch-up runs: orders published at
//     BENCH_LIVE_RATE (2,000/s) from ready until the start's scan ends, and
//     from the resubscription until the reconnect's scan ends (the stream:
//     for a second after each), applied as a keyspace-event subscriber
//     hears it (see measureLatency).
//
// The reference is the same scanner run in process over the same keys,
// with its Redis CPU time per key (INFO cpu).
func BenchmarkCatchUpHistory(b *testing.B) {
	n := envInt("BENCH_HISTORY", 1000000)
	liveRate := envInt("BENCH_LIVE_RATE", 2000)
	srv := redistest.Start(b)
	rdb := srv.Client()
	ctx := context.Background()
	testbin.Dir(b) // built now, not while a start is timed
	if err := redistest.StoreCounted(ctx, rdb, orderPrefix, 0, n, plugins); err != nil {
		b.Fatal(err)
	}
	for from := 0; from < n; from += redistest.CountedChunk {
		if err := storeStream.Run(ctx, rdb, []string{channel}, from, min(redistest.CountedChunk, n-from)).Err(); err != nil {
			b.Fatal(err)
		}
	}
	// The group has read and acknowledged every entry: nothing is pending.
	if err := rdb.XGroupCreate(ctx, channel, "eventhost", "$").Err(); err != nil {
		b.Fatal(err)
	}
	for _, p := range plugins {
		rdb.HSet(ctx, keyspace.RegistryKey, p, time.Now().Add(-time.Hour).UnixMilli())
	}
	for b.Loop() {
		ref := bareScan(b, rdb, n)
		ps := historyRun(b, rdb, srv.Addr, false, liveRate)
		st := historyRun(b, rdb, srv.Addr, true, liveRate)
		b.ReportMetric(ps.ready.Seconds(), "pubsub-ready-s")
		b.ReportMetric(ps.reconnectScan, "pubsub-reconnect-catchup-s")
		b.ReportMetric(ms(ps.longest), "pubsub-longest-call-ms")
		b.ReportMetric(ms(ps.liveP99), "pubsub-live-p99-ms")
		b.ReportMetric(st.ready.Seconds(), "stream-ready-s")
		b.ReportMetric(st.missed.Seconds(), "stream-reconnect-s")
		b.ReportMetric(ref.cpuPerKey, "scan-redis-cpu-us/key")
		fmt.Printf("history of %d counted orders, live orders at %d/s meanwhile:\n", n, liveRate)
		fmt.Printf("  %-24s %12s %14s %16s %16s %13s %22s\n", "", "start→ready", "start scan", "reconnect scan",
			"kill→missed done", "longest call", "live p50/p99 (orders)")
		for _, r := range []struct {
			name string
			h    historyResult
		}{{"pubsub (scan)", ps}, {"stream (pending list)", st}} {
			scanS, reconS := "-", "-"
			if r.h.startScan > 0 {
				scanS, reconS = fmt.Sprintf("%.3f s", r.h.startScan), fmt.Sprintf("%.3f s", r.h.reconnectScan)
			}
			fmt.Printf("  %-24s %10.3f s %14s %16s %14.3f s %10.2f ms %8.1f/%.1f ms (%d)\n", r.name, r.h.ready.Seconds(), scanS, reconS,
				r.h.missed.Seconds(), ms(r.h.longest), ms(r.h.liveP50), ms(r.h.liveP99), r.h.live)
		}
		fmt.Printf("  %-24s %12s %14s %16s %16s %10.2f ms   Redis CPU %.2f µs/key\n", "reference: bare scan", "",
			fmt.Sprintf("%.3f s", ref.took.Seconds()), "", "", ms(ref.longest), ref.cpuPerKey)
		if ps.reconnectScan > 0 {
			fmt.Printf("  pubsub reconnect scan / bare scan = %.2f; pubsub start→ready / stream start→ready = %.2f\n",
				ps.reconnectScan/ref.took.Seconds(), ps.ready.Seconds()/st.ready.Seconds())
		}
	}
}

// scanResult is the reference: the catch-up scan alone, in process.
type scanResult struct {
	took, longest time.Duration
	cpuPerKey     float64
}

func bareScan(b *testing.B, rdb *redis.Client, n int) scanResult {
	var wants []catchup.Want
	for _, p := range plugins {
		wants = append(wants, catchup.Want{Plugin: p})
	}
	cpu := redisCPU(b, rdb)
	start := time.Now()
	st, err := catchup.NewScanner(rdb, orderPrefix).Scan(context.Background(), wants, func([]catchup.Unfinished) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	if st.Keys < n || st.Unfinished != 0 {
		b.Fatalf("bare scan saw %d keys, %d unfinished; want at least %d, 0", st.Keys, st.Unfinished, n)
	}
	return scanResult{took: took, longest: st.Longest, cpuPerKey: (redisCPU(b, rdb) - cpu) * 1e6 / float64(st.Keys)}
}

// historyResult is what historyRun measured for one source.
type historyResult struct {
	ready                    time.Duration
	startScan, reconnectScan float64 // seconds; 0 for the stream
	missed                   time.Duration
	longest                  time.Duration
	live                     int
	liveP50, liveP99         time.Duration
}

func historyRun(b *testing.B, rdb *redis.Client, addr string, stream bool, liveRate int) historyResult {
	ctx := context.Background()
	var res historyResult
	rdb.ConfigSet(ctx, "slowlog-log-slower-than", "1000")
	rdb.SlowLogReset(ctx)
	if err := rdb.ConfigSet(ctx, "notify-keyspace-events", "Kh").Err(); err != nil {
		b.Fatal(err)
	}
	defer rdb.ConfigSet(ctx, "notify-keyspace-events", "")
	obs := watchApplied(b, rdb)
	defer obs.stop()
	metricsAddr := freeAddr(b)
	host := &subprocess{metrics: metricsAddr, stream: stream}
	gen := publish.NewGenerator(time.Now().UnixNano())
	pub := &livePublisher{rdb: rdb, gen: gen, stream: stream, rate: liveRate}

	start := time.Now()
	host.start(b, addr)
	waitReady(b, metricsAddr)
	res.ready = time.Since(start)
	if stream {
		pub.run(b, func() bool { return time.Since(start) > res.ready+time.Second })
	} else {
		pub.run(b, func() bool { return catchUpRuns(b, metricsAddr) >= 1 })
		res.startScan = catchUpSeconds(b, metricsAddr)
	}

	killed := time.Now()
	killSource(b, rdb, stream)
	missed := pub.one(b)
	if !stream {
		// Live from the resubscription until the reconnect's scan ends.
		for n, _ := rdb.PubSubNumSub(ctx, channel).Result(); n[channel] < 1; n, _ = rdb.PubSubNumSub(ctx, channel).Result() {
			time.Sleep(time.Millisecond)
		}
		pub.run(b, func() bool { return catchUpRuns(b, metricsAddr) >= 2 })
		res.reconnectScan = catchUpSeconds(b, metricsAddr) - res.startScan
		res.longest = longestScanCall(b, rdb)
	} else {
		reconnected := time.Now()
		pub.run(b, func() bool { return time.Since(reconnected) > time.Second })
	}
	waitApplied(b, rdb, missed, plugins)
	waitApplied(b, rdb, pub.sent[len(pub.sent)-1].id, plugins)
	host.stop(b)
	at := obs.wait(b, append(pub.ids(), missed))
	res.missed = at[missed].Sub(killed)
	var lat []time.Duration
	for _, o := range pub.sent {
		lat = append(lat, at[o.id].Sub(o.published))
	}
	res.live, res.liveP50, res.liveP99 = len(lat), percentile(lat, 0.5), percentile(lat, 0.99)
	return res
}

// killSource closes the host's intake connection: its Pub/Sub subscriber
// (a client with channel subscriptions; the bench's own listener has a
// pattern one) or its blocked XREADGROUP.
func killSource(b *testing.B, rdb *redis.Client, stream bool) {
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := rdb.ClientList(ctx).Result()
		if err != nil {
			b.Fatal(err)
		}
		killed := 0
		for _, line := range strings.Split(list, "\n") {
			f := map[string]string{}
			for _, kv := range strings.Fields(line) {
				k, v, _ := strings.Cut(kv, "=")
				f[k] = v
			}
			if (!stream && f["sub"] != "" && f["sub"] != "0") || (stream && f["cmd"] == "xreadgroup") {
				if err := rdb.ClientKillByFilter(ctx, "ID", f["id"]).Err(); err == nil {
					killed++
				}
			}
		}
		if killed > 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("found no intake connection of the host to kill")
		}
		time.Sleep(time.Millisecond)
	}
}

// livePublisher stores and announces orders at a fixed rate, as the
// producer does: HSET, then PUBLISH (or XADD to the stream).
type livePublisher struct {
	rdb    *redis.Client
	gen    *publish.Generator
	stream bool
	rate   int
	sent   []sentOrder
}

type sentOrder struct {
	id        string
	published time.Time
}

func (p *livePublisher) send(b *testing.B) sentOrder {
	ctx := context.Background()
	o := p.gen.Next()
	now := time.Now()
	pipe := p.rdb.Pipeline()
	pipe.HSet(ctx, orderPrefix+o.ID, append(o.Fields(), "published_us", now.UnixMicro())...)
	if p.stream {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: channel, Values: []any{"id", o.ID}})
	} else {
		pipe.Publish(ctx, channel, o.ID)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	return sentOrder{id: o.ID, published: now}
}

// run publishes at the rate until done (checked every 10 ms) holds.
func (p *livePublisher) run(b *testing.B, done func() bool) {
	interval := time.Second / time.Duration(p.rate)
	next := time.Now()
	check := next
	for {
		if now := time.Now(); now.After(check) {
			if done() {
				return
			}
			check = now.Add(10 * time.Millisecond)
		}
		time.Sleep(time.Until(next))
		next = next.Add(interval)
		p.sent = append(p.sent, p.send(b))
	}
}

// one sends one order, not counted as live, and returns its id.
func (p *livePublisher) one(b *testing.B) string { return p.send(b).id }

func (p *livePublisher) ids() []string {
	out := make([]string, len(p.sent))
	for i, o := range p.sent {
		out[i] = o.id
	}
	return out
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
