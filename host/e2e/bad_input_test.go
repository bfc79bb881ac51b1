package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
)

// badOrders returns one order per way an order hash can be malformed, built
// from a valid order so that exactly one field is wrong in each.
func badOrders() []badOrder {
	base := publish.NewGenerator(9090).Next().Hash()
	with := func(field, value string) map[string]string {
		h := map[string]string{}
		for k, v := range base {
			h[k] = v
		}
		if value == "<missing>" {
			delete(h, field)
		} else {
			h[field] = value
		}
		return h
	}
	return []badOrder{
		{"bad-no-hash", nil, "does not exist"},
		{"bad-qty-zero", with("qty", "0"), "field qty"},
		{"bad-qty-text", with("qty", "abc"), "field qty"},
		{"bad-qty-missing", with("qty", "<missing>"), "field qty"},
		{"bad-cost-text", with("cost", "abc"), "field cost"},
		{"bad-cost-negative", with("cost", "-1"), "field cost"},
		{"bad-ts-text", with("ts", "yesterday"), "field ts"},
		{"bad-event-empty", with("event", ""), "field event"},
		{"bad-who-empty", with("who", ""), "field who"},
	}
}

// TestBadInputOrders publishes valid orders mixed with malformed ones: each
// malformed one must be dead-lettered exactly once, before any plugin sees
// it, and the valid ones must leave exactly the tutorial's state.
func TestBadInputOrders(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	h := startHost(t, rdb, writeConfig(t, srv, "u8", metricsBlock))
	metricsAddr := h.metricsAddr(t)

	bad := badOrders()
	gen := publish.NewGenerator(7070)
	var valid []publish.Order
	// The tutorial's way, HSET then PUBLISH, with a bad order after every
	// sixth valid one and a valid one last.
	pipe := rdb.Pipeline()
	for i := 0; i < 6*len(bad)+6; i++ {
		o := gen.Next()
		valid = append(valid, o)
		pipe.HSet(ctx, orderPrefix+o.ID, o.Fields()...)
		pipe.Publish(ctx, channel, o.ID)
		if i%6 == 5 && i/6 < len(bad) {
			b := bad[i/6]
			if b.fields != nil {
				pipe.HSet(ctx, orderPrefix+b.id, b.fields)
			}
			pipe.Publish(ctx, channel, b.id)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitApplied(t, rdb, ids(valid), bundled, 60*time.Second)
	waitFor(t, 30*time.Second, fmt.Sprintf("%d dead letters", len(bad)), func() bool {
		n, _ := rdb.XLen(ctx, deadLetterStream).Result()
		return n >= int64(len(bad))
	})

	// Dead letters: one per bad order, naming its hash and what is wrong.
	msgs, err := rdb.XRange(ctx, deadLetterStream, "-", "+").Result()
	if err != nil {
		t.Fatalf("read dead letters: %v", err)
	}
	if len(msgs) != len(bad) {
		t.Errorf("%d dead letters, want %d", len(msgs), len(bad))
	}
	byID := map[string][]map[string]any{}
	for _, m := range msgs {
		id, _ := m.Values["order_id"].(string)
		byID[id] = append(byID[id], m.Values)
	}
	for _, b := range bad {
		letters := byID[b.id]
		if len(letters) != 1 {
			t.Errorf("order %s has %d dead letters, want 1", b.id, len(letters))
			continue
		}
		checkRejectedLetter(t, b, letters[0])
		delete(byID, b.id)
	}
	for id := range byID {
		t.Errorf("unexpected dead letter for order %q", id)
	}

	// A refused order's hash keeps its fields and gains only the dead
	// marker that keeps catch-up from retrying it; a missing one stays missing.
	for _, b := range bad {
		got, err := rdb.HGetAll(ctx, orderPrefix+b.id).Result()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for k, v := range b.fields {
			want[k] = v
		}
		if _, ok := got[keyspace.DeadOrderField]; ok && b.fields != nil {
			got[keyspace.DeadOrderField] = "(set)"
		}
		if b.fields != nil {
			want[keyspace.DeadOrderField] = "(set)"
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s%s = %v, want %v", orderPrefix, b.id, got, want)
		}
	}

	checkOrderHashes(t, rdb, valid, bundled)
	checkTutorialState(t, rdb, valid)

	checkMetric(t, metricsAddr, `eventhost_orders_rejected_total{channel="purchase_orders"}`, float64(len(bad)))
	// The profiler is opt-in (metrics { pprof = true }).
	resp, err := http.Get("http://" + metricsAddr + "/debug/pprof/")
	if err != nil {
		t.Fatalf("GET /debug/pprof/: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without pprof = true: %s, want 404", resp.Status)
	}
	checkMetric(t, metricsAddr, `eventhost_orders_dead_lettered_total{channel="purchase_orders",plugin="",reason="bad order"}`, float64(len(bad)))
	checkMetric(t, metricsAddr, `eventhost_orders_received_total{channel="purchase_orders"}`, float64(len(valid)+len(bad)))
	checkMetric(t, metricsAddr, `eventhost_orders_loaded_total{channel="purchase_orders"}`, float64(len(valid)))
	for _, p := range bundled {
		checkMetric(t, metricsAddr, fmt.Sprintf(`eventhost_orders_processed_total{channel="purchase_orders",plugin=%q}`, p), float64(len(valid)))
	}
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
}

// checkRejectedLetter checks the dead letter of an order refused on loading.
func checkRejectedLetter(t *testing.T, b badOrder, v map[string]any) {
	t.Helper()
	key := orderPrefix + b.id
	reason, _ := v["reason"].(string)
	if !strings.Contains(reason, key) || !strings.Contains(reason, b.reason) {
		t.Errorf("dead letter of %s has reason %q, want it to name %s and say %q", b.id, reason, key, b.reason)
	}
	if v["plugin"] != "" || v["channel"] != channel || v["attempts"] != "1" {
		t.Errorf("dead letter of %s = %v, want plugin \"\", channel %s, attempts 1", b.id, v, channel)
	}
	ms, _ := v["time_ms"].(string)
	if n, err := strconv.ParseInt(ms, 10, 64); err != nil || n <= 0 {
		t.Errorf("dead letter of %s has time_ms %q, want a unix time in ms", b.id, ms)
	}
	if len(v) != 6 {
		t.Errorf("dead letter of %s has fields %v, want order_id, channel, plugin, reason, attempts, time_ms", b.id, v)
	}
}

// TestBadInputDuplicatePublish announces orders more than once: again after
// they were applied, and twice in a row. Each must count once, and the
// duplicate metric must count every skipped (plugin, order) pair.
func TestBadInputDuplicatePublish(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	h := startHost(t, rdb, writeConfig(t, srv, "u8", metricsBlock))
	metricsAddr := h.metricsAddr(t)
	gen := publish.NewGenerator(8080)
	pub := publish.NewPublisher(rdb, channel, orderPrefix)

	// Applied once, then announced again.
	first, err := pub.PublishMany(ctx, gen, 50, 0, nil)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitApplied(t, rdb, ids(first), bundled, 60*time.Second)
	again := first[:20]
	markersBefore := doneMarkers(t, rdb, again)
	pipe := rdb.Pipeline()
	for _, o := range again {
		pipe.Publish(ctx, channel, o.ID)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("publish again: %v", err)
	}

	// Announced twice in a row, in the same round trip.
	var twice []publish.Order
	pipe = rdb.Pipeline()
	for i := 0; i < 30; i++ {
		o := gen.Next()
		twice = append(twice, o)
		pipe.HSet(ctx, orderPrefix+o.ID, o.Fields()...)
		pipe.Publish(ctx, channel, o.ID)
		pipe.Publish(ctx, channel, o.ID)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("publish twice: %v", err)
	}

	// The host handles ids in the order they were published, so once this
	// last order is applied every duplicate before it has been seen.
	last := gen.Next()
	if err := pub.Publish(ctx, last); err != nil {
		t.Fatal(err)
	}
	unique := append(append(append([]publish.Order(nil), first...), twice...), last)
	waitApplied(t, rdb, ids(unique), bundled, 60*time.Second)

	checkOrderHashes(t, rdb, unique, bundled)
	checkNoDeadLetters(t, rdb)
	checkTutorialState(t, rdb, unique)
	if after := doneMarkers(t, rdb, again); fmt.Sprint(after) != fmt.Sprint(markersBefore) {
		t.Errorf("announcing applied orders again rewrote their done markers:\nbefore %v\nafter  %v", markersBefore, after)
	}

	deliveries := len(first) + len(again) + 2*len(twice) + 1
	skipped := len(again) + len(twice)
	checkMetric(t, metricsAddr, `eventhost_orders_received_total{channel="purchase_orders"}`, float64(deliveries))
	for _, p := range bundled {
		// processed is counted after the last order's write landed; once
		// it is complete, so are the counts of every batch before.
		checkMetric(t, metricsAddr, fmt.Sprintf(`eventhost_orders_processed_total{channel="purchase_orders",plugin=%q}`, p), float64(len(unique)))
		series := fmt.Sprintf(`eventhost_orders_duplicate_total{plugin=%q}`, p)
		if got, _ := scrapeMetric(t, metricsAddr, series); got != float64(skipped) {
			t.Errorf("metric %s = %v, want %d: %d orders announced again after they were applied and %d announced twice in a row",
				series, got, skipped, len(again), len(twice))
		}
	}
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
}

// doneMarkers returns the done marker fields and values of each order.
func doneMarkers(t *testing.T, rdb *redis.Client, os []publish.Order) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, o := range os {
		h, err := rdb.HGetAll(context.Background(), orderPrefix+o.ID).Result()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for f, v := range doneView(h) {
			if strings.HasPrefix(f, keyspace.DonePrefix) {
				m[f] = v
			}
		}
		out[o.ID] = m
	}
	return out
}

// TestBadInputStartupErrors starts `eventhost run` with a plugin binary it
// must refuse: it has to stop at once with exit 1 and say which plugin and
// which file.
func TestBadInputStartupErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	srv := redistest.Start(t)
	good := filepath.Join(testbin.PluginDir(t), "eventhost-plugin-sales-histogram")
	dir := t.TempDir()
	missing := filepath.Join(dir, "nowhere", "eventhost-plugin-sales-histogram")
	notExec := filepath.Join(dir, "eventhost-plugin-sales-histogram")
	bin, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notExec, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	zeros := strings.Repeat("0", 64)

	for _, tc := range []struct {
		name, path, extra string
		// want must all appear in stderr.
		want []string
	}{
		{"missing binary", missing, "", []string{"sales-histogram", missing, "no such file"}},
		{"not executable", notExec, "", []string{"sales-histogram", notExec, "not an executable"}},
		{"sha256 mismatch", good, fmt.Sprintf("sha256 = %q", zeros), []string{"sales-histogram", "sha256", zeros}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fmt.Sprintf(`
redis { address = %q }
plugin "sales-histogram" {
  path = %q
  %s
}
plugin "events-summary" {
  path = %q
}
`, srv.Addr, tc.path, tc.extra, filepath.Join(testbin.PluginDir(t), "eventhost-plugin-events-summary"))
			path := filepath.Join(t.TempDir(), "eventhost.hcl")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			res := runEventhost(t, 30*time.Second, nil, "run", "-config", path)
			// cli.ExitFailed: the config is well-formed, the plugin would
			// not start.
			if res.code != 1 {
				t.Errorf("eventhost run exited %d, want 1\nstderr:\n%s", res.code, res.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, res.stderr)
				}
			}
		})
	}
	if live := livePluginProcs(t, testbin.PluginDir(t)); len(live) > 0 {
		t.Errorf("plugin processes left behind by hosts that failed to start: %v", live)
	}
}

// TestBadInputValidate runs `eventhost validate` on broken configs: each
// must exit 2 with a diagnostic at the offending file and line.
func TestBadInputValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	pluginDir := testbin.PluginDir(t)
	// config builds a file whose sales-histogram config block holds body.
	config := func(body string) string {
		return fmt.Sprintf(`redis { address = "127.0.0.1:1" }
plugin_dir = %q
plugin "sales-histogram" {
  config {
%s
  }
}
plugin "events-summary" {}
plugin "customer-invoices" {}
`, pluginDir, body)
	}
	for _, tc := range []struct {
		name string
		src  string
		// line holds the text the diagnostic must point at; "" for a valid
		// config.
		line string
		want []string
	}{
		{"hcl syntax error", config(`    counter = "u8"
    overflow = = "wrap"`), `overflow = = "wrap"`, nil},
		{"counter rejected by the plugin", config(`    timezone = "UTC"
    counter = "u99"`), `counter = "u99"`, []string{"counter", "sales-histogram"}},
		{"unknown attribute", config(`    counter = "u8"
    colour = "blue"`), `colour = "blue"`, []string{"colour"}},
		{"valid", config(`    counter = "u16"`), "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "eventhost.hcl")
			if err := os.WriteFile(path, []byte(tc.src), 0o600); err != nil {
				t.Fatal(err)
			}
			res := runEventhost(t, 30*time.Second, nil, "validate", "-config", path)
			if tc.line == "" {
				if res.code != 0 {
					t.Errorf("validate exited %d, want 0\nstderr:\n%s", res.code, res.stderr)
				}
				if !strings.Contains(res.stdout, path+": ok") {
					t.Errorf("stdout does not say %s: ok:\n%s", path, res.stdout)
				}
				return
			}
			if res.code != 2 {
				t.Errorf("validate exited %d, want 2\nstderr:\n%s", res.code, res.stderr)
			}
			line := 0
			for i, l := range strings.Split(tc.src, "\n") {
				if strings.Contains(l, tc.line) {
					line = i + 1
				}
			}
			at := fmt.Sprintf("%s:%d,", path, line)
			if !strings.Contains(res.stderr, at) {
				t.Errorf("stderr does not point at %s (the line %s):\n%s", at, tc.line, res.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, res.stderr)
				}
			}
			if strings.Contains(res.stdout, path+": ok") {
				t.Errorf("stdout says the config is ok:\n%s", res.stdout)
			}
		})
	}
}

// TestBadInputIDBeforeHash: an id announced before its hash is stored is
// dead-lettered, but the order is not marked dead: once its hash exists,
// the next catch-up counts it, once.
func TestBadInputIDBeforeHash(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	cfg := writeConfig(t, srv, "u8", "")
	h := startHost(t, rdb, cfg)
	o := publish.NewGenerator(9191).Next()
	if err := rdb.Publish(ctx, channel, o.ID).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the dead letter", func() bool {
		n, _ := rdb.XLen(ctx, deadLetterStream).Result()
		return n == 1
	})
	if n := rdb.Exists(ctx, orderPrefix+o.ID).Val(); n != 0 {
		t.Fatalf("the dead letter created the order hash")
	}
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}

	// The shop stores the hash late, and does not announce it again.
	if err := rdb.HSet(ctx, orderPrefix+o.ID, o.Fields()...).Err(); err != nil {
		t.Fatal(err)
	}
	h = startHost(t, rdb, cfg)
	waitApplied(t, rdb, []string{o.ID}, bundled, 30*time.Second)
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	checkOrderHashes(t, rdb, []publish.Order{o}, bundled)
	checkTutorialState(t, rdb, []publish.Order{o})
	letters, err := deadletter.List(ctx, rdb, deadLetterStream, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 || letters[0].OrderID != o.ID || !strings.Contains(letters[0].Reason, "does not exist") {
		t.Errorf("dead letters = %+v, want the one for the early announcement", letters)
	}
}
