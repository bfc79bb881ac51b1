// Package bench measures eventhost end to end on a private redis-server:
// throughput through the real binary and plugin processes against an
// in-process reference that does the same work with the same batching but
// calls the metric functions directly, latency from publish to applied
// effects at a fixed rate, and the host's peak RSS. Run it with `make bench`.
package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/dispatch"
	"github.com/eventhost/eventhost/host/intake"
	"github.com/eventhost/eventhost/host/internal/procstat"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/pipeline"
	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/host/publish"
	"github.com/eventhost/eventhost/host/source"
	customerinvoices "github.com/eventhost/eventhost/plugins/customer-invoices"
	eventssummary "github.com/eventhost/eventhost/plugins/events-summary"
	saleshistogram "github.com/eventhost/eventhost/plugins/sales-histogram"
	"github.com/eventhost/eventhost/sdk"
)

const (
	channel     = "purchase_orders"
	orderPrefix = "purchase_order_details:"
	maxOrders   = 512
	// naiveMaxWait is how long the naive program's batch waits for company.
	naiveMaxWait = 2 * time.Millisecond
)

var plugins = []string{"sales-histogram", "events-summary", "customer-invoices"}

// combinedPlugin is the three metrics as one plugin in one process
// (plugins/tutorial-metrics), which the "combined" runner uses.
var combinedPlugin = []string{"tutorial-metrics"}

// histogramConfig is config.hcl's sales-histogram block, used on both sides.
var histogramConfig = map[string]any{"counter": "u32", "overflow": "sat", "timezone": "UTC"}

// runner is one way of processing orders: start it, and stop it after.
// pids are its processes other than the benchmark's own, the host first
// (none when it runs in process), whose CPU time the benchmark reads.
type runner interface {
	start(b *testing.B, addr string)
	stop(b *testing.B)
	pids() []int
}

// usage is what one round cost: the rate, and CPU time per order in µs.
type usage struct {
	rate float64
	// redis, bench, host and plugins are the CPU µs per order of Redis, of
	// the benchmark's process (the producer, and the in-process runners),
	// of the host process and of its plugin processes together.
	redis, bench, host, plugins float64
	// hostAlloc is the bytes the host allocated per order, and hostGCs its
	// garbage collections per 10,000 orders (its Go metrics; 0 when the
	// runner is not the host, or serves no metrics).
	hostAlloc, hostGCs float64
}

// total is the CPU µs per order of everything the round ran.
func (u usage) total() float64 { return u.redis + u.bench + u.host + u.plugins }

// BenchmarkThroughput publishes orders as fast as possible and times publish
// → every plugin's effects applied, through eventhost, through the
// in-process reference and through the naive program, alternating on one
// Redis so all three see the same machine. It reports the rates, their
// ratios, and where the CPU went per order. The table is logged after the
// benchmark line, so that benchstat can read the output.
func BenchmarkThroughput(b *testing.B) {
	n := envInt("BENCH_ORDERS", 50000)
	rounds := envInt("BENCH_ROUNDS", 3)
	srv := startRedis(b)
	rdb := srv.Client()
	var host, comb, ref, nv []usage
	var batches []float64
	var peakRSS, pluginRSS, combinedRSS int64
	for i := 0; i < b.N*rounds; i++ {
		for _, r := range []runner{&naive{}, &inProcess{}, &subprocess{metrics: freeAddr(b)}, &subprocess{metrics: freeAddr(b), combined: true}} {
			u := measure(b, rdb, srv.Addr, r, n, int64(i), true)
			switch r := r.(type) {
			case *subprocess:
				if r.combined {
					comb = append(comb, u)
					combinedRSS = max(combinedRSS, r.pluginRSS)
					continue
				}
				host = append(host, u)
				batches = append(batches, r.batch)
				peakRSS, pluginRSS = max(peakRSS, r.peakRSS), max(pluginRSS, r.pluginRSS)
			case *inProcess:
				ref = append(ref, u)
			default:
				nv = append(nv, u)
			}
		}
	}
	h, c, rf, nm := medianUsage(host), medianUsage(comb), medianUsage(ref), medianUsage(nv)
	var table strings.Builder
	b.ReportMetric(h.rate, "eventhost-orders/s")
	b.ReportMetric(rf.rate, "reference-orders/s")
	b.ReportMetric(nm.rate, "naive-orders/s")
	b.ReportMetric(h.rate/rf.rate, "ratio")
	b.ReportMetric(h.rate/nm.rate, "ratio-naive")
	b.ReportMetric(c.rate, "combined-orders/s")
	b.ReportMetric(h.redis, "eventhost-redis-cpu-us/order")
	b.ReportMetric(nm.redis, "naive-redis-cpu-us/order")
	b.ReportMetric(h.host, "eventhost-host-cpu-us/order")
	b.ReportMetric(h.plugins, "eventhost-plugins-cpu-us/order")
	b.ReportMetric(h.hostAlloc, "host-alloc-B/order")
	b.ReportMetric(float64(peakRSS)/(1<<20), "host-peak-RSS-MiB")
	b.ReportMetric(float64(pluginRSS)/(1<<20), "plugin-peak-RSS-MiB")
	fmt.Fprintf(&table, "throughput (%d orders, median of %d rounds, each round all four on one Redis):\n", n, rounds)
	fmt.Fprintf(&table, "  %-38s %9s %11s   %s\n", "", "orders/s", "eventhost/", "CPU µs per order: Redis + benchmark process + host + plugins = total")
	row := func(name string, u usage, ratio string) {
		fmt.Fprintf(&table, "  %-38s %9.0f %11s   %s\n", name, u.rate, ratio, u.cpu())
	}
	row("eventhost (3 plugin processes)", h, "")
	row("eventhost, the 3 as 1 (tutorial-metrics)", c, fmt.Sprintf("%.2f", h.rate/c.rate))
	row("in-process reference (same pipeline)", rf, fmt.Sprintf("%.2f", h.rate/rf.rate))
	row("naive program (6 commands/order)", nm, fmt.Sprintf("%.2f", h.rate/nm.rate))
	fmt.Fprintf(&table, "  eventhost / naive per round: %s; eventhost / reference per round: %s; combined / naive per round: %s\n",
		ratios(host, nv), ratios(host, ref), ratios(comb, nv))
	fmt.Fprintf(&table, "  peak RSS: host %.1f MiB, largest plugin %.1f MiB (tutorial-metrics: %.1f MiB); eventhost's mean batch %.0f orders; host allocates %.1f KB/order, %.1f GCs per 10,000 orders\n",
		float64(peakRSS)/(1<<20), float64(pluginRSS)/(1<<20), float64(combinedRSS)/(1<<20), median(batches), h.hostAlloc/1000, h.hostGCs)
	fmt.Fprintln(&table, "  (the benchmark process publishes: it is the producer in every row)")
	b.Log(strings.TrimSuffix(table.String(), "\n"))
}

// cpu formats where the CPU went per order.
func (u usage) cpu() string {
	return fmt.Sprintf("%5.1f + %5.1f + %5.1f + %5.1f = %5.1f", u.redis, u.bench, u.host, u.plugins, u.total())
}

// medianUsage is the round with the median rate.
func medianUsage(us []usage) usage {
	s := append([]usage(nil), us...)
	sort.Slice(s, func(i, j int) bool { return s[i].rate < s[j].rate })
	return s[len(s)/2]
}

// ratios formats a[i].rate/b[i].rate for each round.
func ratios(a, b []usage) string {
	var parts []string
	for i := range a {
		parts = append(parts, fmt.Sprintf("%.2f", a[i].rate/b[i].rate))
	}
	return strings.Join(parts, " ")
}

// BenchmarkCatchUp stores orders no plugin has seen (published while the
// host was down) and times a host start until every plugin applied all of
// them: plugin launch, the catch-up scan and the processing. Meanwhile live
// orders are published at BENCH_LIVE_RATE (2,000/s) from the moment the host
// is ready, and their latency is reported (see measureLatency): they must
// not queue behind the catch-up.
func BenchmarkCatchUp(b *testing.B) {
	n := envInt("BENCH_CATCHUP_ORDERS", 100000)
	liveRate := envInt("BENCH_LIVE_RATE", 2000)
	srv := redistest.Start(b)
	rdb := srv.Client()
	ctx := context.Background()
	testbin.Dir(b) // built now, not while a start is timed
	for i := 0; i < b.N; i++ {
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		// The plugins were enabled before these orders: they are not history.
		for _, p := range plugins {
			rdb.HSet(ctx, keyspace.RegistryKey, p, time.Now().Add(-time.Hour).UnixMilli())
		}
		gen := publish.NewGenerator(int64(i) + 500)
		for stored := 0; stored < n; {
			pipe := rdb.Pipeline()
			for j := 0; j < 1000 && stored < n; j++ {
				o := gen.Next()
				pipe.HSet(ctx, orderPrefix+o.ID, o.Fields()...)
				stored++
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
		if err := rdb.ConfigSet(ctx, "notify-keyspace-events", "Kh").Err(); err != nil {
			b.Fatal(err)
		}
		obs := watchApplied(b, rdb)
		metricsAddr := freeAddr(b)
		host := &subprocess{metrics: metricsAddr}
		start := time.Now()
		host.start(b, srv.Addr)
		waitReady(b, metricsAddr)
		ready := time.Since(start)
		pub := &livePublisher{rdb: rdb, gen: publish.NewGenerator(int64(i) + 900), rate: liveRate}
		pub.run(b, func() bool {
			if time.Since(start) > 5*time.Minute {
				b.Fatal("catch-up did not finish within 5 minutes")
			}
			return processed(b, metricsAddr) >= float64((n+len(pub.sent))*len(plugins))
		})
		took := time.Since(start)
		waitApplied(b, rdb, pub.sent[len(pub.sent)-1].id, plugins)
		host.stop(b)
		at := obs.wait(b, pub.ids())
		rdb.ConfigSet(ctx, "notify-keyspace-events", "")
		var lat []time.Duration
		for _, o := range pub.sent {
			lat = append(lat, at[o.id].Sub(o.published))
		}
		p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
		b.ReportMetric(took.Seconds(), "catchup-s")
		b.ReportMetric(float64(n)/took.Seconds(), "catchup-orders/s")
		b.ReportMetric(ms(p99), "live-p99-ms")
		fmt.Printf("catch-up of %d unfinished orders from host start: %s (%.0f orders/s), ready after %s; live orders at %d/s meanwhile: p50 %.2f ms, p99 %.2f ms (%d orders)\n",
			n, took.Round(time.Millisecond), float64(n)/took.Seconds(), ready.Round(time.Millisecond), liveRate, ms(p50), ms(p99), len(lat))
	}
}

// processed sums eventhost_orders_processed_total over every series.
func processed(b *testing.B, addr string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, "eventhost_orders_processed_total{"); ok {
			_, v, _ := strings.Cut(rest, "} ")
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return sum
}

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// BenchmarkLatency publishes at a fixed rate (BENCH_RATE, default 2,000
// orders/s, for BENCH_SECONDS, default 5) and reports the p50 and p99 of
// publish → effects applied, through eventhost and through the reference,
// round after round (BENCH_LATENCY_ROUNDS, default 3) on one Redis. An
// order counts as applied when a subscriber to its hash's keyspace events
// hears the done markers written, not at the time the marker holds (the
// host's clock just before it sent the script).
func BenchmarkLatency(b *testing.B) {
	rate := envInt("BENCH_RATE", 2000)
	seconds := envInt("BENCH_SECONDS", 5)
	rounds := envInt("BENCH_LATENCY_ROUNDS", 3)
	srv := redistest.Start(b)
	rdb := srv.Client()
	testbin.Dir(b) // built before the first round, not during it
	all := map[string][]time.Duration{}
	marker := map[string][]time.Duration{}
	// steady holds the rounds in which the publisher never owed more than
	// 5 ms of orders at once: the machine did not stall the load itself.
	steady := map[string][]time.Duration{}
	steadyRounds := map[string]int{}
	for i := 0; i < b.N*rounds; i++ {
		for _, r := range []runner{&inProcess{}, &subprocess{}, &subprocess{combined: true}} {
			name := runnerName(r)
			seen, byMarker, burst := measureLatency(b, rdb, srv.Addr, r, rate, seconds, int64(i))
			all[name] = append(all[name], seen...)
			marker[name] = append(marker[name], byMarker...)
			if burst <= max(1, rate/200) {
				steady[name] = append(steady[name], seen...)
				steadyRounds[name]++
			}
			fmt.Printf("  round %d, %-9s: p50 %6.2f ms, p99 %6.2f ms (by the done marker's time: p99 %6.2f ms); at most %d orders published at once\n", i+1, name,
				ms(percentile(seen, 0.50)), ms(percentile(seen, 0.99)), ms(percentile(byMarker, 0.99)), burst)
		}
	}
	fmt.Printf("latency at %d orders/s, %d rounds of %d s, all orders of all rounds (combined: eventhost with the three metrics as one plugin process, tutorial-metrics):\n", rate, rounds, seconds)
	fmt.Printf("  %-38s %8s %8s %18s\n", "", "p50 ms", "p99 ms", "p99 by marker, ms")
	for _, name := range []string{"eventhost", "combined", "reference"} {
		p50, p99 := percentile(all[name], 0.50), percentile(all[name], 0.99)
		b.ReportMetric(ms(p50), name+"-p50-ms")
		b.ReportMetric(ms(p99), name+"-p99-ms")
		fmt.Printf("  %-38s %8.2f %8.2f %18.2f\n", name, ms(p50), ms(p99), ms(percentile(marker[name], 0.99)))
	}
	for _, name := range []string{"eventhost", "combined"} {
		fmt.Printf("  %s / reference: p50 %.2f, p99 %.2f\n", name,
			ms(percentile(all[name], 0.5))/ms(percentile(all["reference"], 0.5)),
			ms(percentile(all[name], 0.99))/ms(percentile(all["reference"], 0.99)))
	}
	for _, name := range []string{"eventhost", "combined", "reference"} {
		if len(steady[name]) > 0 {
			fmt.Printf("  %s in the %d of %d rounds whose publisher never owed more than 5 ms of orders: p50 %.2f ms, p99 %.2f ms\n",
				name, steadyRounds[name], rounds, ms(percentile(steady[name], 0.5)), ms(percentile(steady[name], 0.99)))
		}
	}
}

func runnerName(r runner) string {
	if s, ok := r.(*subprocess); ok {
		if s.combined {
			return "combined"
		}
		return "eventhost"
	}
	return "reference"
}

// pluginsOf are the names of the plugins r runs, as its done markers say.
func pluginsOf(r runner) []string {
	if s, ok := r.(*subprocess); ok && s.combined {
		return combinedPlugin
	}
	return plugins
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// measure returns r's throughput in orders/s and the CPU time spent per
// order, in µs, by Redis (producer included: the same for every runner;
// INFO cpu, not commandstats, whose wall-clock times grow whenever a busy
// 2-core machine deschedules Redis), by the benchmark's process and by r's
// processes. BENCH_STATS=1 prints commandstats too. flush empties Redis
// first.
func measure(b *testing.B, rdb *redis.Client, addr string, r runner, n int, seed int64, flush bool) usage {
	ctx := context.Background()
	if flush {
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
	r.start(b, addr)
	defer r.stop(b)
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	pids := r.pids()
	cpu := func() [4]float64 {
		c := [4]float64{redisCPU(b, rdb), cpuSeconds(os.Getpid())}
		for i, pid := range pids {
			c[min(i, 1)+2] += cpuSeconds(pid)
		}
		return c
	}
	before := cpu()
	allocBefore, gcsBefore := hostGC(b, r)
	pub := publish.NewPublisher(rdb, channel, orderPrefix)
	start := time.Now()
	published, err := pub.PublishMany(ctx, publish.NewGenerator(seed+1), n, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	switch r := r.(type) {
	case *naive:
		r.waitCount(b, n)
	case *subprocess:
		waitApplied(b, rdb, published[len(published)-1].ID, pluginsOf(r))
		if r.metrics != "" {
			// An id dropped from a full intake is counted later, by a
			// catch-up: the last id applied does not mean all were.
			r.waitProcessed(b, n*len(pluginsOf(r)))
		}
	default:
		waitApplied(b, rdb, published[len(published)-1].ID, pluginsOf(r))
	}
	u := usage{rate: float64(n) / time.Since(start).Seconds()}
	after := cpu()
	allocAfter, gcsAfter := hostGC(b, r)
	u.hostAlloc, u.hostGCs = (allocAfter-allocBefore)/float64(n), (gcsAfter-gcsBefore)*10000/float64(n)
	perOrder := func(i int) float64 { return (after[i] - before[i]) * 1e6 / float64(n) }
	u.redis, u.bench, u.host, u.plugins = perOrder(0), perOrder(1), perOrder(2), perOrder(3)
	if os.Getenv("BENCH_STATS") != "" {
		us, per, calls := consumerMicros(b, rdb)
		names := make([]string, 0, len(per))
		for name := range per {
			names = append(names, name)
		}
		sort.Strings(names)
		// Calls per order do not vary with the machine's load, unlike
		// commandstats' wall-clock times.
		fmt.Printf("%T: Redis µs (calls) per order by command:", r)
		for _, name := range names {
			fmt.Printf(" %s=%.2f (%.3f)", name, per[name]/float64(n), float64(calls[name])/float64(n))
		}
		fmt.Printf(" (commandstats, consumer only: %.2f µs/order)\n", us/float64(n))
	}
	return u
}

// hostGC returns the bytes the host has allocated so far and its count of
// garbage collections, when r is the host serving metrics.
func hostGC(b *testing.B, r runner) (alloc, gcs float64) {
	s, ok := r.(*subprocess)
	if !ok || s.metrics == "" {
		return 0, 0
	}
	return metric(b, s.metrics, "go_memstats_alloc_bytes_total"), metric(b, s.metrics, "go_gc_duration_seconds_count")
}

// cpuSeconds is the user and system CPU time process pid has used, in
// seconds; 0 when unknown.
func cpuSeconds(pid int) float64 {
	st, err := procstat.Read(pid)
	if err != nil {
		return 0
	}
	return st.CPU.Seconds()
}

// measureLatency publishes rate orders/s for seconds through r and returns
// each order's publish → applied time twice: as seen by a subscriber to
// the order hashes' keyspace events (the second write of a hash is the
// apply script's HSET of the done markers, the first the producer's), and
// by the done marker's own timestamp. The subscriber costs Redis a
// notification per hash write, the same for every runner.
func measureLatency(b *testing.B, rdb *redis.Client, addr string, r runner, rate, seconds int, seed int64) (seen, byMarker []time.Duration, burst int) {
	ctx := context.Background()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "notify-keyspace-events", "Kh").Err(); err != nil {
		b.Fatal(err)
	}
	defer rdb.ConfigSet(ctx, "notify-keyspace-events", "")
	obs := watchApplied(b, rdb)
	defer obs.stop()
	r.start(b, addr)
	defer r.stop(b)
	gen := publish.NewGenerator(seed + 100)
	total := rate * seconds
	sent := make([]string, 0, total)
	// Every millisecond the orders due by then go out in one pipeline, so
	// the publisher's own round trip does not cap the rate. When the busy
	// machine deschedules the publisher, the orders it owes go out together
	// once it runs again: burst reports the most sent at once.
	start := time.Now()
	next := start
	for len(sent) < total {
		time.Sleep(time.Until(next))
		next = next.Add(time.Millisecond)
		due := min(total, 1+int(time.Since(start).Seconds()*float64(rate)))
		p := rdb.Pipeline()
		now := time.Now().UnixMicro()
		burst = max(burst, due-len(sent))
		for len(sent) < due {
			o := gen.Next()
			p.HSet(ctx, orderPrefix+o.ID, append(o.Fields(), "published_us", now)...)
			p.Publish(ctx, channel, o.ID)
			sent = append(sent, o.ID)
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	waitApplied(b, rdb, sent[len(sent)-1], pluginsOf(r))
	applied := obs.wait(b, sent)
	seen = make([]time.Duration, 0, total)
	byMarker = make([]time.Duration, 0, total)
	for _, id := range sent {
		f := rdb.HGetAll(ctx, orderPrefix+id).Val()
		pub, _ := strconv.ParseInt(f["published_us"], 10, 64)
		byMarker = append(byMarker, time.Duration(markedAt(f, pluginsOf(r))-pub)*time.Microsecond)
		seen = append(seen, applied[id].Sub(time.UnixMicro(pub)))
	}
	return seen, byMarker, burst
}

// markedAt is the latest time, in unix microseconds, an order hash's done
// markers hold: a field each holds microseconds, a list of plugins
// (keyspace.DoneList) milliseconds.
func markedAt(f map[string]string, plugins []string) int64 {
	var at int64
	for _, p := range plugins {
		d, _ := strconv.ParseInt(f[keyspace.DoneField(p)], 10, 64)
		at = max(at, d)
	}
	if ms, ok := keyspace.DoneListTime(f[keyspace.DoneListField]); ok {
		at = max(at, ms*1000)
	}
	return at
}

// appliedWatch records when each order hash is written the second time.
type appliedWatch struct {
	ps   *redis.PubSub
	done chan map[string]time.Time
}

func watchApplied(b *testing.B, rdb *redis.Client) *appliedWatch {
	ctx := context.Background()
	prefix := "__keyspace@0__:" + orderPrefix
	ps := rdb.PSubscribe(ctx, prefix+"*")
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		b.Fatal(err)
	}
	w := &appliedWatch{ps: ps, done: make(chan map[string]time.Time, 1)}
	go func() {
		writes := map[string]int{}
		at := map[string]time.Time{}
		for {
			msg, err := ps.ReceiveMessage(ctx)
			if err != nil {
				w.done <- at
				return
			}
			now := time.Now()
			id := strings.TrimPrefix(msg.Channel, prefix)
			if writes[id]++; writes[id] == 2 {
				at[id] = now
			}
		}
	}()
	return w
}

// wait returns the times once every id in ids was seen applied.
func (w *appliedWatch) wait(b *testing.B, ids []string) map[string]time.Time {
	// The last id's markers were seen in Redis by waitApplied; its
	// notification was sent before that reply, so a short grace suffices.
	time.Sleep(100 * time.Millisecond)
	w.stop()
	at := <-w.done
	w.done <- at
	for _, id := range ids {
		if _, ok := at[id]; !ok {
			b.Fatalf("no keyspace event for the done markers of order %s", id)
		}
	}
	return at
}

func (w *appliedWatch) stop() { _ = w.ps.Close() }

// waitApplied waits until order id carries the done marker of every plugin
// in plugins. Ids on one channel are applied in order, so the last one
// stands for all.
func waitApplied(b *testing.B, rdb redis.Cmdable, id string, plugins []string) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		f := rdb.HGetAll(context.Background(), orderPrefix+id).Val()
		done := 0
		for _, p := range plugins {
			if keyspace.Done(f, p) {
				done++
			}
		}
		if done == len(plugins) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("order %s not applied within 5 minutes", id)
		}
		time.Sleep(time.Millisecond)
	}
}

// subprocess is the real thing: the eventhost binary and plugin processes.
type subprocess struct {
	cmd     *exec.Cmd
	peakRSS int64
	// pluginRSS is the largest peak RSS of the host's plugin processes.
	pluginRSS int64
	// batch is the mean batch size, read from the metrics when served.
	batch float64
	// metrics, when set, is the host's metrics listen address.
	metrics string
	// caughtUp makes start wait until the host's first catch-up is over
	// (its metrics say so).
	caughtUp bool
	// stream, when set, makes the host read the stream named channel with
	// the consumer group "eventhost" instead of subscribing; start then
	// returns once the process runs (wait for /readyz, with metrics set).
	stream bool
	// combined runs the three metrics as one plugin (tutorial-metrics)
	// instead of three.
	combined bool
}

// metricsBlock is the config's metrics block for listen; none when "".
func metricsBlock(listen string) string {
	if listen == "" {
		return ""
	}
	// BENCH_PPROF=1 serves the host's profiler there too, for profiling
	// a round by hand (go tool pprof http://<listen>/debug/pprof/profile).
	return fmt.Sprintf("metrics {\n  listen = %q\n  pprof = %v\n}", listen, os.Getenv("BENCH_PPROF") != "")
}

func (s *subprocess) start(b *testing.B, addr string) {
	// The histogram's settings go to the plugin that has them.
	first, others := "sales-histogram", "plugin \"events-summary\" {}\nplugin \"customer-invoices\" {}"
	if s.combined {
		first, others = combinedPlugin[0], ""
	}
	src := fmt.Sprintf("source \"pubsub\" { channels = [%q] }", channel)
	if s.stream {
		src = fmt.Sprintf("source \"stream\" {\n  stream = %q\n  group  = \"eventhost\"\n}", channel)
	}
	cfg := fmt.Sprintf(`
redis { address = %q }
%s
plugin_dir = %q
batch {
  max_orders = %d
  max_wait   = %q
}
log { level = "warn" }
%s
plugin %q {
  config {
    counter  = %q
    overflow = %q
    timezone = %q
  }
}
%s
`, addr, src, testbin.PluginDir(b), maxOrders, batchWait().String(), metricsBlock(s.metrics), first,
		histogramConfig["counter"], histogramConfig["overflow"], histogramConfig["timezone"], others)
	path := filepath.Join(b.TempDir(), "bench.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	s.cmd = exec.Command(testbin.Eventhost(b), "run", "-config", path)
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	if s.stream {
		return
	}
	waitSubscribed(b, addr)
	waitRegistered(b, addr, pluginsOf(s))
	if s.caughtUp {
		deadline := time.Now().Add(5 * time.Minute)
		for catchUpRuns(b, s.metrics) < 1 {
			if time.Now().After(deadline) {
				b.Fatal("eventhost's first catch-up did not finish within 5 minutes")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// waitRegistered waits until the host registered every plugin: its first
// catch-up runs then, and on the empty database the benchmarks start from
// it is over at once.
func waitRegistered(b *testing.B, addr string, plugins []string) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		reg := c.HGetAll(context.Background(), keyspace.RegistryKey).Val()
		ok := len(reg) == len(plugins)
		for _, v := range reg {
			_, err := strconv.ParseInt(v, 10, 64)
			ok = ok && err == nil
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("eventhost did not register its plugins within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitProcessed waits until the host's plugins processed want orders in
// all, by its metrics.
func (s *subprocess) waitProcessed(b *testing.B, want int) {
	deadline := time.Now().Add(5 * time.Minute)
	for processed(b, s.metrics) < float64(want) {
		if time.Now().After(deadline) {
			b.Fatalf("eventhost processed %.0f of %d (order, plugin) pairs within 5 minutes", processed(b, s.metrics), want)
		}
		time.Sleep(10 * time.Millisecond) // rendering the metrics costs the host CPU
	}
}

// pids are the host's and its plugins'.
func (s *subprocess) pids() []int {
	return append([]int{s.cmd.Process.Pid}, children(s.cmd.Process.Pid)...)
}

func (s *subprocess) stop(b *testing.B) {
	if s.metrics != "" {
		s.batch = metric(b, s.metrics, "eventhost_batch_orders_sum") / max(1, metric(b, s.metrics, "eventhost_batch_orders_count"))
	}
	s.peakRSS = peakRSS(s.cmd.Process.Pid)
	for _, child := range children(s.cmd.Process.Pid) {
		s.pluginRSS = max(s.pluginRSS, peakRSS(child))
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	_ = s.cmd.Wait()
}

// children returns the pids of pid's child processes (its plugins).
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		data, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// peakRSS reads VmHWM, the process' resident-set high-water mark, in bytes.
func peakRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// inProcess is the reference: the same source, loader, batching and atomic
// apply, with the three metric functions called in process.
type inProcess struct {
	cancel context.CancelFunc
	done   chan struct{}
	rdb    *redis.Client
}

func (r *inProcess) start(b *testing.B, addr string) {
	r.rdb = redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	hist := saleshistogram.New()
	values, _ := sdk.WithDefaults(hist.Describe().Config, histogramConfig)
	if err := hist.Configure(sdk.NewConfig(values)); err != nil {
		b.Fatal(err)
	}
	reserved := []string{orderPrefix, keyspace.MarkerPrefix, "eventhost:deadletter"}
	var targets []dispatch.Target
	for _, p := range []sdk.Plugin{hist, eventssummary.New(), customerinvoices.New()} {
		d := p.Describe()
		targets = append(targets, dispatch.Target{
			Processor: dispatch.Local{Plugin: p}, Channels: []string{channel},
			Policy: policy.New(d.Name, d.Keys, reserved),
		})
	}
	m := metrics.New()
	logger := hclog.NewNullLogger()
	loader := orders.NewLoader(r.rdb, orderPrefix)
	pipe := pipeline.New(loader, dispatch.New(targets, loader.Key), apply.New(r.rdb, "eventhost:deadletter"), m, logger)
	pipe.MaxOrders, pipe.MaxWait = maxOrders, batchWait()
	src := source.NewPubSub(r.rdb, []string{channel}, logger, m)
	subscribed := make(chan struct{})
	src.OnSubscribed = func(reconnect bool) {
		if !reconnect {
			close(subscribed)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	ids := intake.NewQueue(1 << 20)
	go func() { _ = src.Run(ctx, ids); ids.Close() }()
	go func() { defer close(r.done); _ = pipe.RunIntake(context.Background(), ids, nil) }()
	<-subscribed
}

func (r *inProcess) pids() []int { return nil }

func (r *inProcess) stop(*testing.B) {
	r.cancel()
	<-r.done
	_ = r.rdb.Close()
}

func waitSubscribed(b *testing.B, addr string) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, _ := c.PubSubNumSub(context.Background(), channel).Result()
		if n[channel] >= 1 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("eventhost did not subscribe within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func percentile(ds []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*q)]
}

// batchWait is max_wait for eventhost and the reference: BENCH_MAX_WAIT,
// or eventhost's default, 0 (a batch goes out as soon as the pipeline can
// take it). BENCH_MAX_WAIT=2ms is how batches were cut before.
func batchWait() time.Duration {
	d, err := time.ParseDuration(os.Getenv("BENCH_MAX_WAIT"))
	if err != nil {
		return config.DefaultMaxWait
	}
	return d
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// startRedis starts the benchmark's redis-server, at the niceness
// BENCH_REDIS_NICE when it is set (-15: Redis gets the CPU before the
// processes it serves, as on a machine of its own; negative values need
// root). On 2 shared cores the kernel otherwise deschedules Redis inside a
// 5 ms script whenever the host, its plugins and the producer are busy,
// and commandstats, which times wall-clock, charges the script for it.
func startRedis(b *testing.B) *redistest.Server {
	nice := os.Getenv("BENCH_REDIS_NICE")
	if nice == "" {
		return redistest.Start(b)
	}
	if _, err := strconv.Atoi(nice); err != nil {
		b.Fatalf("BENCH_REDIS_NICE=%q: want a niceness, such as -15", nice)
	}
	return redistest.StartWrapped(b, []string{"nice", "-n", nice})
}
