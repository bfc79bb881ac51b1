package pluginhost_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/dispatch"
	"github.com/eventhost/eventhost/host/internal/procstat"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/pluginhost"
	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/sdk"
)

// BenchmarkDispatchRoundTrip sends batches of 20 orders (a batch at 10,000
// orders/s) through the dispatcher to the three bundled metrics, as three
// plugin processes ("three") and as one (tutorial-metrics, "combined"), and reports the round trip's p50 and p99 and the CPU the
// host and the plugins spent per batch (from /proc; Linux only). "busy"
// sends batch after batch; "idle" sleeps 1 ms before each, so every process
// is woken from idle, as between batches at that rate. At this batch size
// the cost is the calls', not the orders'.
func BenchmarkDispatchRoundTrip(b *testing.B) {
	if testing.Short() {
		b.Skip("runs the bundled plugins")
	}
	// three are the bundled plugins as three processes; combined the same
	// metrics as one plugin in one process (tutorial-metrics).
	for _, set := range []struct {
		name    string
		plugins []string
	}{
		{"three", []string{"sales-histogram", "events-summary", "customer-invoices"}},
		{"combined", []string{"tutorial-metrics"}},
	} {
		b.Run(set.name, func(b *testing.B) { roundTrips(b, set.plugins) })
	}
}

// roundTrips is BenchmarkDispatchRoundTrip for one set of plugins.
func roundTrips(b *testing.B, plugins []string) {
	m := metrics.New()
	var targets []dispatch.Target
	for _, name := range plugins {
		cfg := config.Plugin{
			Name: name, Path: filepath.Join(testbin.PluginDir(b), "eventhost-plugin-"+name),
			Timeout: 10 * time.Second, MaxAttempts: 1, RestartLimit: 3, RestartWindow: time.Minute,
		}
		// Not b.TempDir: a socket's path must be short.
		sockets, err := os.MkdirTemp("", "eventhost-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(sockets) })
		in, err := pluginhost.Launch(b.Context(), cfg, hclog.NewNullLogger(), m, sockets)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(in.Stop)
		targets = append(targets, dispatch.Target{
			Processor: in, Channels: []string{"c"}, Policy: policy.New(name, in.Description().Keys, nil),
		})
	}
	d := dispatch.New(targets, func(id string) string { return "purchase_order_details:" + id })
	loaded := make([]orders.Loaded, 20)
	for i := range loaded {
		id := strconv.Itoa(1000000 + i)
		loaded[i] = orders.Loaded{
			Order: sdk.Order{ID: id, Channel: "c", TS: 1700000000 + int64(i), Qty: 2, Cost: 12.5, Event: "Judo", Who: "ann"},
			Ref:   orders.Ref{ID: id, Channel: "c"}, Key: "purchase_order_details:" + id,
		}
	}
	for _, gap := range []time.Duration{0, time.Millisecond} {
		name := "busy"
		if gap > 0 {
			name = "idle"
		}
		b.Run(name, func(b *testing.B) {
			var took []time.Duration
			host0, plugins0 := treeCPU()
			for b.Loop() {
				if gap > 0 {
					time.Sleep(gap)
				}
				start := time.Now()
				out, err := d.Dispatch(context.Background(), loaded)
				took = append(took, time.Since(start))
				if err != nil || len(out.Writes) != len(targets)*len(loaded) {
					b.Fatalf("dispatch: %v, %d writes, failures %v", err, len(out.Writes), out.Failures)
				}
				out.Release()
			}
			host1, plugins1 := treeCPU()
			slices.Sort(took)
			pick := func(q float64) float64 {
				return float64(took[int(q*float64(len(took)-1))].Nanoseconds()) / 1e3
			}
			b.ReportMetric(pick(0.50), "p50-µs")
			b.ReportMetric(pick(0.99), "p99-µs")
			n := float64(len(took))
			b.ReportMetric(float64((host1-host0).Microseconds())/n, "host-cpu-µs/batch")
			b.ReportMetric(float64((plugins1-plugins0).Microseconds())/n, "plugins-cpu-µs/batch")
		})
	}
}

// treeCPU returns the CPU time of this process and the sum of its
// children's (the plugins), from /proc; zero where there is none.
func treeCPU() (self, children time.Duration) {
	me := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := procstat.Read(pid)
		if err != nil {
			continue
		}
		switch {
		case pid == me:
			self += st.CPU
		case st.PPID == me:
			children += st.CPU
		}
	}
	return self, children
}
