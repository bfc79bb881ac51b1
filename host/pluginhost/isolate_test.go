package pluginhost

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/sdk"
)

// These tests run the poison fixture (host/internal/testplugins/poison) as a
// real plugin process: it records healthy orders, hangs on ids starting
// "hang-", dies on "crash-" and answers over the message limit on "big-".

const poisonName = "poison"

// launchPoison starts the fixture with the given restart limit; the
// timeout is 1 s, generous for a loaded machine, and max_attempts 3.
func launchPoison(t *testing.T, restartLimit int) (*Instance, *metrics.Metrics) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	cfg := config.Plugin{
		Name: poisonName, Path: testbin.Build(t, "./host/internal/testplugins/poison", "eventhost-plugin-poison"),
		Timeout: time.Second, MaxAttempts: 3, RestartLimit: restartLimit, RestartWindow: time.Minute,
	}
	m := metrics.New()
	in, err := Launch(t.Context(), cfg, hclog.NewNullLogger(), m, newSocketDir(t))
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	t.Cleanup(in.Stop)
	return in, m
}

// batch is n orders with ids "0".."n-1", but for the ids in poison.
func batch(n int, poison map[int]string) []sdk.Order {
	out := make([]sdk.Order, n)
	for i := range out {
		out[i].ID = strconv.Itoa(i)
		if id, ok := poison[i]; ok {
			out[i].ID = id
		}
	}
	return out
}

// wantRecorded checks that results[i] is the fixture's answer for orders[i]
// for every i not in failed.
func wantRecorded(t *testing.T, orders []sdk.Order, results []sdk.Result, failed map[int]bool) {
	t.Helper()
	if len(results) != len(orders) {
		t.Fatalf("%d results for %d orders", len(results), len(orders))
	}
	for i, r := range results {
		if failed[i] {
			continue
		}
		if r.Err != "" || len(r.Effects) != 1 || r.Effects[0].Key != "poison:orders" || r.Effects[0].Args[0] != orders[i].ID {
			t.Errorf("order %s: %+v, want it recorded", orders[i].ID, r)
		}
	}
}

// counter reads a counter of m for the fixture.
func counter(t *testing.T, c *prometheus.CounterVec, labels ...string) int {
	t.Helper()
	var d dto.Metric
	if err := c.WithLabelValues(labels...).Write(&d); err != nil {
		t.Fatal(err)
	}
	return int(d.GetCounter().GetValue())
}

// calls is how many Process calls the fixture got.
func calls(t *testing.T, m *metrics.Metrics) int {
	t.Helper()
	var d dto.Metric
	if err := m.PluginRPCSeconds.WithLabelValues(poisonName).(prometheus.Histogram).Write(&d); err != nil {
		t.Fatal(err)
	}
	return int(d.GetHistogram().GetSampleCount())
}

// A hanging order and a crashing one inside a full batch cost only
// themselves: bisection finds them in log2(n)+1 failed calls each, every
// other order is recorded, the crashes they caused are not counted against
// the plugin, and it is up afterwards.
func TestIsolatePoisonOrders(t *testing.T) {
	t.Parallel()
	in, m := launchPoison(t, 5)
	orders := batch(64, map[int]string{9: "crash-9", 40: "hang-40"})
	start := time.Now()
	results, err := in.Process(t.Context(), orders)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a batch of 64 with 2 poison orders took %s", time.Since(start).Round(time.Millisecond))
	wantRecorded(t, orders, results, map[int]bool{9: true, 40: true})
	// 64 → 32 → 16 → 8 → 4 → 2 → 1: seven calls held each.
	want := map[int]sdk.Result{
		9: {Err: "plugin crashed on this order: its process died handling it (7 calls holding it failed, the last with it alone)",
			Permanent: true, HostFailure: sdk.FailCrash, Attempts: 7},
		40: {Err: "plugin hung on this order: no answer within 1s (7 calls holding it failed, the last with it alone)",
			Permanent: true, HostFailure: sdk.FailTimeout, Attempts: 7},
	}
	for i, w := range want {
		if r := results[i]; r.Err != w.Err || r.Permanent != w.Permanent || r.HostFailure != w.HostFailure || r.Attempts != w.Attempts || r.Effects != nil {
			t.Errorf("order %s: %+v\nwant %+v", orders[i].ID, r, w)
		}
	}
	// The whole batch and each half on the way down to the two orders
	// failed (1 + 6 + 6); every failed call had two halves tried (11 × 2).
	for _, c := range []struct {
		what      string
		got, want int
	}{
		{"crashes", counter(t, m.PluginErrors, poisonName, sdk.FailCrash), 7},
		{"timeouts", counter(t, m.PluginErrors, poisonName, sdk.FailTimeout), 6},
		{"restarts", counter(t, m.PluginRestarts, poisonName), 13},
		{"calls", calls(t, m), 1 + 22},
		{"failures blamed on the plugin", len(in.crashes), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
		}
	}
	if in.Disabled() || !in.Up() {
		t.Errorf("disabled %v, up %v: want enabled and up", in.Disabled(), in.Up())
	}
}

// An answer over the message limit is the order's fault: it is isolated
// like a crash, but the process is never restarted or blamed.
func TestIsolateTooBig(t *testing.T) {
	t.Parallel()
	in, m := launchPoison(t, 1)
	// Encoding 300 MB takes a while on a loaded machine.
	in.cfg.Timeout = 10 * time.Second
	orders := batch(8, map[int]string{3: "big-3"})
	results, err := in.Process(t.Context(), orders)
	if err != nil {
		t.Fatal(err)
	}
	wantRecorded(t, orders, results, map[int]bool{3: true})
	want := sdk.Result{
		Err: fmt.Sprintf("message too big: the plugin's answer for this order is over the %d-byte limit (4 calls holding it failed, the last with it alone); the plugin was not restarted",
			sdk.MaxMessageBytes),
		Permanent: true, HostFailure: sdk.FailSize, Attempts: 4,
	}
	if r := results[3]; r.Err != want.Err || r.HostFailure != want.HostFailure || r.Attempts != want.Attempts || !r.Permanent {
		t.Errorf("big order: %+v\nwant %+v", r, want)
	}
	if n := counter(t, m.PluginRestarts, poisonName); n != 0 {
		t.Errorf("%d restarts, want none", n)
	}
	if n := counter(t, m.PluginErrors, poisonName, sdk.FailSize); n != 4 {
		t.Errorf("%d size failures, want 4 (8, 4, 2 and 1 orders)", n)
	}
	if len(in.crashes) != 0 || in.Disabled() || !in.Up() {
		t.Errorf("blamed %d times, disabled %v, up %v: want 0, false, true", len(in.crashes), in.Disabled(), in.Up())
	}
}

// A plugin killed from outside fails the next call, but its orders all
// succeed when tried again: no order is to blame, so the plugin is (once),
// and nothing is lost, for a batch of one order as for a larger one.
func TestIsolateUnexplainedCrash(t *testing.T) {
	t.Parallel()
	in, m := launchPoison(t, 5)
	for round, n := range []int{4, 1} {
		pid := in.proc.client.ReattachConfig().Pid
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		orders := batch(n, nil)
		results, err := in.Process(t.Context(), orders)
		if err != nil {
			t.Fatal(err)
		}
		wantRecorded(t, orders, results, nil)
		if got := len(in.crashes); got != round+1 {
			t.Errorf("batch of %d after a kill: blamed %d times in all, want %d", n, got, round+1)
		}
	}
	if n := counter(t, m.PluginRestarts, poisonName); n != 2 {
		t.Errorf("%d restarts, want 2", n)
	}
	if in.Disabled() || !in.Up() {
		t.Errorf("disabled %v, up %v: want enabled and up", in.Disabled(), in.Up())
	}
}

// A plugin that dies on every order convicts every order it is given: more
// than restart_limit convictions in a row, with no success between them,
// disable it. The orders not yet isolated say so.
func TestIsolateBrokenPluginIsDisabled(t *testing.T) {
	t.Parallel()
	in, _ := launchPoison(t, 2)
	in.backoff.MaxInterval = 50 * time.Millisecond // crash after crash, no success resets it
	poison := map[int]string{}
	for i := range 16 {
		poison[i] = fmt.Sprintf("crash-%d", i)
	}
	orders := batch(16, poison)
	results, err := in.Process(t.Context(), orders)
	if err != nil {
		t.Fatal(err)
	}
	// 16 → 8 → 4 → 2 → crash-0, then crash-1, then 2..3 → crash-2: five
	// calls held each, and the third conviction in a row disables the
	// plugin.
	for i, r := range results {
		switch {
		case i < 3 && (r.HostFailure != sdk.FailCrash || r.Attempts != 5):
			t.Errorf("order %d: %+v, want convicted of a crash after 5 calls", i, r)
		case i > 2 && (r.HostFailure != sdk.FailDisabled || r.Err != fmt.Sprintf(
			"plugin disabled after repeated crashes: the host was looking for the order that failed its batch (%d calls holding this order failed)", r.Attempts)):
			t.Errorf("order %d: %+v, want failed as disabled", i, r)
		}
	}
	if !in.Disabled() || in.Up() {
		t.Errorf("disabled %v, up %v: want disabled and down", in.Disabled(), in.Up())
	}
	if _, err := in.Process(t.Context(), batch(1, nil)); err != ErrDisabled {
		t.Errorf("Process on a disabled plugin: %v, want ErrDisabled", err)
	}
}

// Isolation is bounded: past extraCalls, the orders not yet isolated fail
// together, which counts once against the plugin.
func TestIsolateGivesUpPastItsBudget(t *testing.T) {
	t.Parallel()
	in, m := launchPoison(t, 100)
	in.backoff.MaxInterval = 50 * time.Millisecond
	poison := map[int]string{}
	for i := range 16 {
		poison[i] = fmt.Sprintf("crash-%d", i)
	}
	orders := batch(16, poison)
	results, err := in.Process(context.Background(), orders)
	if err != nil {
		t.Fatal(err)
	}
	budget := extraCalls(16, 3)
	if got := calls(t, m); got != 1+budget {
		t.Errorf("%d calls, want 1 + %d", got, budget)
	}
	kinds := map[string]int{}
	for i, r := range results {
		kinds[r.HostFailure]++
		if r.HostFailure == sdk.FailBatch && r.Err != fmt.Sprintf(
			"isolation given up: the plugin failed %d calls holding this order, and the host stopped looking for the order responsible after %d calls for a batch of 16 orders", r.Attempts, 1+budget) {
			t.Errorf("order %d: %q", i, r.Err)
		}
	}
	if kinds[sdk.FailCrash] == 0 || kinds[sdk.FailBatch] == 0 || kinds[sdk.FailCrash]+kinds[sdk.FailBatch] != 16 {
		t.Errorf("results by kind %v, want some convicted of a crash and the rest given up on", kinds)
	}
	if len(in.crashes) != 1 || in.Disabled() {
		t.Errorf("blamed %d times, disabled %v: want once, enabled", len(in.crashes), in.Disabled())
	}
}
