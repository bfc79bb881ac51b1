package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/internal/testplugins/topcustomers"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
)

// These tests reload a running host (SIGHUP) with a changed config file and
// a changed plugin_dir: a plugin dropped in, one removed, one whose config
// block changed, and configs the host must reject. The fixture plugin is
// top-customers (host/internal/testplugins/topcustomers), scoring by qty so
// that its leaderboard compares exactly. Every test runs the host on a
// private plugin_dir of its own.

// logList is names as the host's log prints a list: ["a", "b"].
func logList(names ...string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// pluginPIDs waits until the host has exactly one live child process for
// each plugin in names, and none for any other, and returns their pids.
func pluginPIDs(t *testing.T, h *host, dir string, names ...string) map[string]int {
	t.Helper()
	want := append([]string(nil), names...)
	sort.Strings(want)
	var got map[string]int
	var seen []string
	waitFor(t, 30*time.Second, fmt.Sprintf("one plugin process for each of %v", want), func() bool {
		got, seen = map[string]int{}, nil
		for _, p := range livePluginProcs(t, dir) {
			if p.ppid != h.cmd.Process.Pid {
				continue
			}
			name := strings.TrimPrefix(filepath.Base(strings.TrimSuffix(p.exe, " (deleted)")), "eventhost-plugin-")
			got[name] = p.pid
			seen = append(seen, name)
		}
		sort.Strings(seen)
		return strings.Join(seen, ",") == strings.Join(want, ",")
	})
	return got
}

// checkSamePIDs fails for each plugin in names whose pid differs.
func checkSamePIDs(t *testing.T, got, want map[string]int, names ...string) {
	t.Helper()
	for _, n := range names {
		if got[n] != want[n] {
			t.Errorf("plugin %s runs as pid %d, was %d: it was restarted, want it untouched", n, got[n], want[n])
		}
	}
}

// leaderboard reads the sorted set at key as member -> score.
func leaderboard(t *testing.T, rdb *redis.Client, key string) map[string]float64 {
	t.Helper()
	zs, err := rdb.ZRangeWithScores(context.Background(), key, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, z := range zs {
		out[z.Member.(string)] = z.Score
	}
	return out
}

// topModel is the leaderboard scoring by qty leaves for os.
func topModel(os []publish.Order) map[string]float64 {
	out := map[string]float64{}
	for _, o := range os {
		out[o.Who] += float64(o.Qty)
	}
	return out
}

func checkLeaderboard(t *testing.T, rdb *redis.Client, key string, want map[string]float64) {
	t.Helper()
	got := leaderboard(t, rdb, key)
	var problems []string
	for who, w := range want {
		if got[who] != w {
			problems = append(problems, fmt.Sprintf("%s: %v, want %v", who, got[who], w))
		}
	}
	for who, g := range got {
		if _, ok := want[who]; !ok {
			problems = append(problems, fmt.Sprintf("%s: %v, want no entry", who, g))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		t.Errorf("leaderboard %s differs from the model in %d members: %s", key, len(problems), firstFew(problems, 10))
	}
}

// markers reads each order's done and history markers for plugin.
func markers(t *testing.T, rdb *redis.Client, os []publish.Order, plugin string) (done, history []bool) {
	t.Helper()
	done, history = make([]bool, len(os)), make([]bool, len(os))
	for i, h := range orderHashes(t, rdb, os) {
		_, done[i] = h[keyspace.DoneField(plugin)]
		_, history[i] = h[keyspace.HistoryField(plugin)]
	}
	return done, history
}

// flow publishes orders one at a time, every interval, from a goroutine,
// until stopped (or 20,000 orders or two minutes, whichever comes first).
type flow struct {
	mu        sync.Mutex // held during each publish, so a mark falls between two
	published []publish.Order
	err       error
	stop      chan struct{}
	stopper   sync.Once
	done      chan struct{}
}

func startFlow(rdb *redis.Client, seed int64, interval time.Duration) *flow {
	f := &flow{stop: make(chan struct{}), done: make(chan struct{})}
	pub, gen := publish.NewPublisher(rdb, channel, orderPrefix), publish.NewGenerator(seed)
	deadline := time.Now().Add(2 * time.Minute)
	go func() {
		defer close(f.done)
		for len(f.published) < 20000 && time.Now().Before(deadline) {
			select {
			case <-f.stop:
				return
			case <-time.After(interval):
			}
			f.mu.Lock()
			o := gen.Next()
			f.err = pub.Publish(context.Background(), o)
			if f.err == nil {
				f.published = append(f.published, o)
			}
			f.mu.Unlock()
			if f.err != nil {
				return
			}
		}
	}()
	return f
}

// mark returns the orders published so far; no publish is in progress at
// that moment.
func (f *flow) mark() []publish.Order {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.published[:len(f.published):len(f.published)]
}

// stopOnce stops publishing and waits for the publisher; safe to call
// twice (finish, and the test's cleanup when it failed before finish).
func (f *flow) stopOnce() {
	f.stopper.Do(func() { close(f.stop) })
	<-f.done
}

// finish stops publishing and returns every order published.
func (f *flow) finish(t *testing.T) []publish.Order {
	t.Helper()
	f.stopOnce()
	if f.err != nil {
		t.Fatalf("publish: %v", f.err)
	}
	return f.published
}

// TestReloadAddsPluginWhileOrdersFlow drops the fixture into plugin_dir,
// adds its block and reloads while orders are published without a pause.
// The orders fall into three groups by when they were published:
//
//   - before: published, and applied by the bundled plugins, before SIGHUP
//     was sent. They are history for the fixture: history marker, no done
//     marker, not on the leaderboard (backfill, not built here, counts them).
//   - around: published from then until the test saw "reload applied". Each
//     is either counted (done marker) or history, or both (counted live,
//     then marked as already stored); never neither.
//   - after: published after "reload applied". Every one is counted.
//
// The leaderboard is exactly the model over the orders carrying the
// fixture's done marker, the bundled plugins' state is exactly the
// tutorial's over every order published (none lost or counted twice across
// the reload), and the bundled plugin processes keep their pids.
func TestReloadAddsPluginWhileOrdersFlow(t *testing.T) {
	t.Parallel()
	s := newReloadSetup(t)
	s.write(t, s.config(t, ""))
	fixture := testbin.Build(t, "./host/internal/testplugins/topcustomers/cmd/eventhost-plugin-"+top, "eventhost-plugin-"+top)
	h := startHost(t, s.rdb, s.path)
	pids := pluginPIDs(t, h, s.dir, configOrder...)

	f := startFlow(s.rdb, 31, time.Millisecond)
	t.Cleanup(func() { f.stopOnce() })
	waitFor(t, 60*time.Second, "100 orders published before the reload", func() bool { return len(f.mark()) >= 100 })
	before := f.mark()
	waitApplied(t, s.rdb, ids(before), configOrder, 60*time.Second)

	s.install(t, top, fixture)
	s.write(t, s.config(t, topBlock("", "")))
	catchUps := strings.Count(h.log.String(), "catch-up done")
	verdict := h.reload(t)
	around := f.mark()[len(before):]
	for _, want := range []string{"reload applied", "added=" + logList(top), "removed=[]", "replaced=[]",
		"unchanged=" + logList(configOrder...)} {
		if !strings.Contains(verdict, want) {
			t.Errorf("reload: %q, want it to say %s", verdict, want)
		}
	}
	waitFor(t, 60*time.Second, "100 orders published after the reload", func() bool {
		return len(f.mark()) >= len(before)+len(around)+100
	})
	all := f.finish(t)
	after := all[len(before)+len(around):]

	waitApplied(t, s.rdb, ids(all), configOrder, 60*time.Second)
	waitApplied(t, s.rdb, ids(after), []string{top}, 60*time.Second)
	// The catch-up the reload triggered registered the fixture: from then
	// on every stored order is history for it or was counted by it.
	waitFor(t, 30*time.Second, "the catch-up after the reload", func() bool {
		return strings.Count(h.log.String(), "catch-up done") > catchUps
	})
	now := pluginPIDs(t, h, s.dir, withTop...)
	checkSamePIDs(t, now, pids, configOrder...)
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}

	done, history := markers(t, s.rdb, all, top)
	var counted []publish.Order
	var aroundCounted int
	for i, o := range all {
		group := i - len(before) // < 0: before; < len(around): around; after
		switch {
		case group < 0 && (done[i] || !history[i]):
			t.Errorf("order %s, published before the reload: done %v, history %v; want history only", o.ID, done[i], history[i])
		case group >= 0 && group < len(around) && !done[i] && !history[i]:
			t.Errorf("order %s, published during the reload, has neither the done nor the history marker of %s", o.ID, top)
		case group >= len(around) && !done[i]:
			t.Errorf("order %s, published after the reload was applied, was not counted by %s", o.ID, top)
		}
		if done[i] {
			counted = append(counted, o)
			if group >= 0 && group < len(around) {
				aroundCounted++
			}
		}
	}
	t.Logf("orders: %d before the reload (history), %d around it (%d counted), %d after it (counted)",
		len(before), len(around), aroundCounted, len(after))
	checkLeaderboard(t, s.rdb, topcustomers.DefaultKey, topModel(counted))
	s.checkBundled(t, all, withTop, nil)

	// With backfill, the new metric covers the orders from before the
	// reload too: every order, each once.
	res := mustRun(t, 0, "backfill", "-config", s.path, "-plugin", top)
	if want := fmt.Sprintf("processed %d", len(all)-len(counted)); !strings.Contains(res.stdout+res.stderr, want) {
		t.Errorf("backfill output does not say %q:\n%s%s", want, res.stdout, res.stderr)
	}
	waitApplied(t, s.rdb, ids(all), []string{top}, 10*time.Second)
	checkLeaderboard(t, s.rdb, topcustomers.DefaultKey, topModel(all))
	s.checkBundled(t, all, withTop, nil)
}

// TestReloadRejectsInvalidConfig: a config with a syntax error, one whose
// block the fixture rejects, one pinning a sha256 the binary does not have,
// and one changing a setting only a restart can change are each rejected
// with their reason; the host goes on with the plugins it had (same pids)
// and keeps processing, and counts the rejections. A valid reload after
// them is applied, with nothing to change.
func TestReloadRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	s := newReloadSetup(t)
	s.installTop(t)
	good := s.config(t, metricsBlock+topBlock("", ""))
	s.write(t, good)
	h := startHost(t, s.rdb, s.path)
	metricsAddr := h.metricsAddr(t)
	pids := pluginPIDs(t, h, s.dir, withTop...)
	pub, gen := publish.NewPublisher(s.rdb, channel, orderPrefix), publish.NewGenerator(32)
	var published []publish.Order
	flowThrough := func() {
		t.Helper()
		os, err := pub.PublishMany(context.Background(), gen, 100, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		published = append(published, os...)
		waitApplied(t, s.rdb, ids(os), withTop, 60*time.Second)
	}
	flowThrough()

	tests := []struct {
		name   string
		config string
		want   []string // in the log after the SIGHUP
	}{
		{"syntax error", good + "plugin \"broken\" {\n",
			[]string{"config error", s.path + ":", "is not valid"}},
		{"the plugin rejects its config block", s.config(t, metricsBlock+topBlock("", `    key = "leaders"`)),
			[]string{"config error", "rejected its config", "leaders", "a plugin rejected its config block"}},
		{"sha256 pin the binary does not match", s.config(t, metricsBlock+topBlock(`  sha256 = "`+strings.Repeat("0", 64)+`"`, "")),
			[]string{"but the config pins " + strings.Repeat("0", 64)}},
		{"a setting that needs a restart", strings.Replace(good, "max_orders = 256", "max_orders = 128", 1),
			[]string{"changing batch needs a restart"}},
	}
	for i, tt := range tests {
		if tt.config == good {
			t.Fatalf("%s: the config did not change", tt.name)
		}
		s.write(t, tt.config)
		from := len(h.log.String())
		verdict := h.reload(t)
		if !strings.Contains(verdict, "reload rejected") {
			t.Errorf("%s: %q, want the reload rejected", tt.name, verdict)
		}
		log := h.log.String()[from:]
		for _, w := range tt.want {
			if !strings.Contains(log, w) {
				t.Errorf("%s: the host's log does not say %q:\n%s", tt.name, w, tail(log, 20))
			}
		}
		checkSamePIDs(t, pluginPIDs(t, h, s.dir, withTop...), pids, withTop...)
		flowThrough()
		checkMetric(t, metricsAddr, `eventhost_reloads_total{result="rejected"}`, float64(i+1))
	}

	s.write(t, good)
	verdict := h.reload(t)
	if !strings.Contains(verdict, "reload applied") || !strings.Contains(verdict, "added=[]") || !strings.Contains(verdict, "replaced=[]") {
		t.Errorf("reload of the running config: %q, want it applied with nothing added or replaced", verdict)
	}
	checkSamePIDs(t, pluginPIDs(t, h, s.dir, withTop...), pids, withTop...)
	checkMetric(t, metricsAddr, `eventhost_reloads_total{result="applied"}`, 1)
	flowThrough()
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	s.checkBundled(t, published, withTop, nil)
	checkLeaderboard(t, s.rdb, topcustomers.DefaultKey, topModel(published))
}

// TestReloadReplacesAndRemovesPlugins: changing the fixture's config block
// replaces just the fixture (new pid; the old instance's last orders are
// its last), so does replacing its binary in plugin_dir with another one,
// and removing customer-invoices stops its process, after which orders
// carry no marker of it and its keys stop growing. The other plugins keep
// their pids throughout and stay exact.
func TestReloadReplacesAndRemovesPlugins(t *testing.T) {
	t.Parallel()
	s := newReloadSetup(t)
	s.installTop(t)
	s.write(t, s.config(t, topBlock("", "")))
	h := startHost(t, s.rdb, s.path)
	pids := pluginPIDs(t, h, s.dir, withTop...)
	pub, gen := publish.NewPublisher(s.rdb, channel, orderPrefix), publish.NewGenerator(33)
	publishApplied := func(plugins []string) []publish.Order {
		t.Helper()
		os, err := pub.PublishMany(context.Background(), gen, 200, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		waitApplied(t, s.rdb, ids(os), plugins, 60*time.Second)
		return os
	}
	a := publishApplied(withTop)

	const v2 = topcustomers.DefaultKey + ":v2"
	s.write(t, s.config(t, topBlock("", fmt.Sprintf("    key = %q", v2))))
	verdict := h.reload(t)
	if !strings.Contains(verdict, "reload applied") || !strings.Contains(verdict, "replaced="+logList(top+" (config)")) ||
		!strings.Contains(verdict, "unchanged="+logList(configOrder...)) {
		t.Errorf("reload with the fixture's config block changed: %q, want %s replaced for its config, the rest unchanged", verdict, top)
	}
	replaced := pluginPIDs(t, h, s.dir, withTop...)
	checkSamePIDs(t, replaced, pids, configOrder...)
	if replaced[top] == pids[top] {
		t.Errorf("%s kept pid %d across a change of its config block; want a new instance", top, pids[top])
	}
	b := publishApplied(withTop)

	s.installTop(t, "\nanother build\n")
	verdict = h.reload(t)
	if !strings.Contains(verdict, "reload applied") || !strings.Contains(verdict, "replaced="+logList(top+" (binary)")) {
		t.Errorf("reload with the fixture's binary replaced: %q, want %s replaced for its binary", verdict, top)
	}
	rebuilt := pluginPIDs(t, h, s.dir, withTop...)
	checkSamePIDs(t, rebuilt, pids, configOrder...)
	if rebuilt[top] == replaced[top] {
		t.Errorf("%s kept pid %d across a new binary; want a new instance", top, rebuilt[top])
	}

	s.write(t, strings.Replace(s.config(t, topBlock("", fmt.Sprintf("    key = %q", v2))), `plugin "customer-invoices" {}`, "", 1))
	verdict = h.reload(t)
	if !strings.Contains(verdict, "reload applied") || !strings.Contains(verdict, "removed="+logList("customer-invoices")) {
		t.Errorf("reload with customer-invoices removed: %q, want it applied and customer-invoices removed", verdict)
	}
	rest := []string{top, "sales-histogram", "events-summary"}
	checkSamePIDs(t, pluginPIDs(t, h, s.dir, rest...), rebuilt, rest...)
	if pluginAlive(pids["customer-invoices"], s.dir) {
		t.Errorf("customer-invoices (pid %d) still runs after it was removed", pids["customer-invoices"])
	}
	c := publishApplied(rest)
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}

	if done, _ := markers(t, s.rdb, c, "customer-invoices"); strings.Contains(fmt.Sprint(done), "true") {
		t.Errorf("orders published after customer-invoices was removed carry its done marker: %v", firstFew(ids(c), 5))
	}
	checkLeaderboard(t, s.rdb, topcustomers.DefaultKey, topModel(a))
	checkLeaderboard(t, s.rdb, v2, topModel(append(append([]publish.Order(nil), b...), c...)))

	all := append(append(append([]publish.Order(nil), a...), b...), c...)
	s.checkBundled(t, all, withTop, func(want map[string]value) {
		// The invoices are as customer-invoices left them when it was removed.
		for k := range want {
			if strings.HasPrefix(k, "invoices:") {
				delete(want, k)
			}
		}
		for k, v := range modelState(all[:len(a)+len(b)], 32) {
			if strings.HasPrefix(k, "invoices:") {
				want[k] = v
			}
		}
	})
}

// TestReloadRelaunchesDisabledPlugin: a plugin disabled after repeated
// crashes is launched again by a reload, even with its config unchanged
// (the fix may be a new binary, or the cause outside it), and counts the
// orders that follow.
func TestReloadRelaunchesDisabledPlugin(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	gen := publish.NewGenerator(4343)
	// Ids 4343-0000001 … 4343-0000009 crash liar. One order that crashes
	// it costs only itself; orders that crash it one after another, each
	// alone, past restart_limit disable it.
	var cursed []publish.Order
	for range 9 {
		cursed = append(cursed, gen.Next())
	}
	cfg := writeConfig(t, srv, "u8", liarBlock(t, "  restart_limit = 1\n  max_attempts = 2", map[string]string{"mode": "crash", "match": "4343-000000"}))
	h := startHost(t, rdb, cfg)
	pub := publish.NewPublisher(rdb, channel, orderPrefix)
	for _, o := range cursed {
		if err := pub.Publish(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 60*time.Second, "liar to be disabled", func() bool {
		return strings.Contains(h.log.String(), "PLUGIN DISABLED")
	})
	waitFor(t, 30*time.Second, "the cursed orders to be dead-lettered for liar", func() bool {
		return len(liarLetters(t, rdb)) == len(cursed)
	})
	if verdict := h.reload(t); !strings.Contains(verdict, "reload applied") {
		t.Fatalf("reload with liar disabled: %s", verdict)
	}
	after, err := pub.PublishMany(context.Background(), gen, 50, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, rdb, ids(after), append([]string{liarName}, bundled...), 60*time.Second)
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	if n := len(liarLetters(t, rdb)); n != len(cursed) {
		t.Errorf("%d dead letters for liar, want %d (the cursed orders only)", n, len(cursed))
	}
	checkOrderHashes(t, rdb, after, append([]string{liarName}, bundled...))
}
