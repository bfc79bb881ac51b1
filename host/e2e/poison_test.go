package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/publish"
	"github.com/eventhost/eventhost/sdk"
)

// These tests run the bundled plugins next to poison
// (host/internal/testplugins/poison), which hangs on ids starting "hang-",
// kills its own process on "crash-" (a panic in a goroutine, which the
// SDK's per-order recover cannot catch) and answers over the gRPC message
// limit on "big-". A poison order must cost only itself: the host isolates
// it inside its batch, dead-letters it for that plugin alone with a reason
// naming what happened, counts every other order, and keeps the plugin.

const poisonName = "poison"

// poisonRun is a private redis-server with an eventhost running the bundled
// plugins and poison.
type poisonRun struct {
	srv     *redistest.Server
	rdb     *redis.Client
	h       *host
	metrics string // the metrics listener's address
	// published is every order published, in order.
	published []publish.Order
}

// startPoisonRun starts redis and eventhost with poison's timeout and
// batches of up to 64 orders.
func startPoisonRun(t *testing.T, timeout string) *poisonRun {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	srv := redistest.Start(t)
	r := &poisonRun{srv: srv, rdb: srv.Client()}
	path := testbin.Build(t, "./host/internal/testplugins/poison", "eventhost-plugin-poison")
	extra := metricsBlock + fmt.Sprintf("plugin %q {\n  path = %q\n  timeout = %q\n}\n", poisonName, path, timeout)
	cfg := writeConfig(t, srv, "u8", extra)
	// Full batches of 64: the ids below arrive in one burst.
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "max_orders = 256", "max_orders = 64", 1)
	s = strings.Replace(s, `max_wait   = "1ms"`, `max_wait   = "20ms"`, 1)
	if !strings.Contains(s, "max_orders = 64") || !strings.Contains(s, `"20ms"`) {
		t.Fatalf("writeConfig's batch block changed; this test sets it:\n%s", b)
	}
	if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	r.h = startHost(t, r.rdb, cfg)
	r.metrics = r.h.metricsAddr(t)
	return r
}

// publishBurst stores and announces n generated orders in one pipeline,
// renaming the one at position i to poison[i].
func (r *poisonRun) publishBurst(t *testing.T, seed int64, n int, poison map[int]string) {
	t.Helper()
	gen := publish.NewGenerator(seed)
	ctx := context.Background()
	pipe := r.rdb.Pipeline()
	for i := range n {
		o := gen.Next()
		if id, ok := poison[i]; ok {
			o.ID = id
		}
		r.published = append(r.published, o)
		pipe.HSet(ctx, orderPrefix+o.ID, o.Fields()...)
		pipe.Publish(ctx, channel, o.ID)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// settle waits until the bundled plugins applied every order and poison
// wrote or dead-lettered each, then stops eventhost.
func (r *poisonRun) settle(t *testing.T) {
	t.Helper()
	waitApplied(t, r.rdb, ids(r.published), bundled, 120*time.Second)
	waitFor(t, 120*time.Second, "poison to write or dead-letter every order", func() bool {
		n, _ := r.rdb.SCard(context.Background(), "poison:orders").Result()
		dl, _ := r.rdb.XLen(context.Background(), dlStream).Result()
		return int(n+dl) >= len(r.published)
	})
}

// checkReady checks that poison is up and the host ready, once the last
// relaunch (if any) is done.
func (r *poisonRun) checkReady(t *testing.T) {
	t.Helper()
	series := fmt.Sprintf("eventhost_plugin_up{plugin=%q}", poisonName)
	waitFor(t, 30*time.Second, "poison to be up", func() bool {
		v, _ := scrapeMetric(t, r.metrics, series)
		return v == 1
	})
	resp, err := http.Get("http://" + r.metrics + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ready" {
		t.Errorf("/readyz = %d %q, want 200 ready", resp.StatusCode, body)
	}
	if strings.Contains(r.h.log.String(), "PLUGIN DISABLED") {
		t.Errorf("a plugin was disabled")
	}
}

// restarts is how often the host relaunched poison.
func (r *poisonRun) restarts(t *testing.T) int {
	t.Helper()
	v, _ := scrapeMetric(t, r.metrics, fmt.Sprintf("eventhost_plugin_restarts_total{plugin=%q}", poisonName))
	return int(v)
}

// checkLetters checks that the dead-letter stream holds exactly one entry
// per id in want, each for poison, on the order channel, with the reason
// want[id] gives for its attempts, and returns the entries by id.
func (r *poisonRun) checkLetters(t *testing.T, want map[string]func(attempts int) string) map[string]deadletter.Entry {
	t.Helper()
	all, err := deadletter.List(context.Background(), r.rdb, dlStream, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]deadletter.Entry{}
	for _, e := range all {
		reason, ok := want[e.OrderID]
		switch {
		case !ok || e.Plugin != poisonName:
			t.Errorf("unexpected dead letter: order %s, plugin %q: %s", e.OrderID, e.Plugin, e.Reason)
		case got[e.OrderID].OrderID != "":
			t.Errorf("order %s dead-lettered twice", e.OrderID)
		case e.Channel != channel:
			t.Errorf("dead letter for %s: channel %q, want %q", e.OrderID, e.Channel, channel)
		case e.Reason != reason(e.Attempts):
			t.Errorf("dead letter for %s: reason\n%q, want\n%q", e.OrderID, e.Reason, reason(e.Attempts))
		}
		got[e.OrderID] = e
	}
	for id := range want {
		if _, ok := got[id]; !ok {
			t.Errorf("order %s was not dead-lettered", id)
		}
	}
	return got
}

// checkState checks the exact Redis state: poison:orders holds every order
// but dead, every order hash carries every plugin's done marker (poison's
// but on dead), and the bundled plugins' keys are what the tutorial's
// listeners leave for every order.
func (r *poisonRun) checkState(t *testing.T, dead map[string]bool) {
	t.Helper()
	ctx := context.Background()
	var want []string
	for _, o := range r.published {
		if !dead[o.ID] {
			want = append(want, o.ID)
		}
	}
	sort.Strings(want)
	got, err := r.rdb.SMembers(ctx, "poison:orders").Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("poison:orders holds %d ids, want %d:\n%s", len(got), len(want), idSetDiff(got, want))
	}
	if keys := dump(t, r.rdb, "poison:*"); len(keys) != 1 {
		t.Errorf("poison's keys: %d, want only poison:orders", len(keys))
	}
	for _, id := range unapplied(r.rdb, ids(r.published), bundled) {
		t.Errorf("order %s lacks a bundled plugin's done marker", id)
	}
	var poisoned []string
	for _, id := range unapplied(r.rdb, ids(r.published), []string{poisonName}) {
		if !dead[id] {
			t.Errorf("order %s lacks poison's done marker", id)
		}
		poisoned = append(poisoned, id)
	}
	if len(poisoned) != len(dead) {
		t.Errorf("orders without poison's done marker: %v, want those dead-lettered, %v", poisoned, dead)
	}

	ref := redis.NewClient(&redis.Options{Addr: r.srv.Addr, DB: 1})
	defer ref.Close()
	replayTutorial(t, ref, r.published, "u8")
	state := dump(t, r.rdb, "")
	takeRegistry(t, state, append([]string{poisonName}, bundled...)...)
	for k := range state {
		if strings.HasPrefix(k, orderPrefix) || strings.HasPrefix(k, "poison:") || k == dlStream {
			delete(state, k)
		}
	}
	diffState(t, state, dump(t, ref, ""))
}

// heldBy is how a poison dead letter's reason counts the failed calls.
func heldBy(n int) string {
	if n == 1 {
		return "1 call holding it alone failed"
	}
	return fmt.Sprintf("%d calls holding it failed, the last with it alone", n)
}

// TestPoisonOrdersCostOnlyThemselves: 500 orders in one burst, batches of
// 64; poison hangs on one and kills its process on another. Only those two
// are dead-lettered, for poison alone and with the reason; the other 498
// are counted by every plugin; poison is restarted once per failed call
// that held one of them and never disabled.
func TestPoisonOrdersCostOnlyThemselves(t *testing.T) {
	t.Parallel()
	r := startPoisonRun(t, "2s")
	const hang, crash = "hang-77", "crash-301"
	r.publishBurst(t, 801, 500, map[int]string{77: hang, 301: crash})
	r.settle(t)
	r.checkReady(t)
	letters := r.checkLetters(t, map[string]func(int) string{
		hang: func(n int) string {
			return fmt.Sprintf("plugin hung on this order: no answer within 2s (%s)", heldBy(n))
		},
		crash: func(n int) string {
			return fmt.Sprintf("plugin crashed on this order: its process died handling it (%s)", heldBy(n))
		},
	})
	// Found inside batches: a batch of n orders costs its poison order
	// log2(n)+1 failed calls, 7 for a full one.
	for id, e := range letters {
		if e.Attempts < 4 || e.Attempts > 7 {
			t.Errorf("order %s: %d failed calls held it, want 4..7 (alone in a batch of 5..64)", id, e.Attempts)
		}
	}
	// One relaunch per failed call; a call that held both counts once.
	a, b := letters[hang].Attempts, letters[crash].Attempts
	n := r.restarts(t)
	if n < max(a, b) || n > a+b {
		t.Errorf("poison restarted %d times, want %d..%d (one per failed call)", n, max(a, b), a+b)
	}
	if code := r.h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	r.checkState(t, map[string]bool{hang: true, crash: true})
	t.Logf("hang: %d failed calls, crash: %d; %d restarts", a, b, n)
}

// TestPoisonOrderTooBig: an order whose answer alone is over the gRPC
// message limit fails its calls with ResourceExhausted. That is the order's
// fault: only it is dead-lettered, and the plugin is never restarted.
func TestPoisonOrderTooBig(t *testing.T) {
	t.Parallel()
	// Encoding a 300 MB answer takes a while on a loaded machine: this
	// test is about size, not time.
	r := startPoisonRun(t, "20s")
	const big = "big-40"
	r.publishBurst(t, 802, 100, map[int]string{40: big})
	r.settle(t)
	r.checkReady(t)
	r.checkLetters(t, map[string]func(int) string{
		big: func(n int) string {
			return fmt.Sprintf("message too big: the plugin's answer for this order is over the %d-byte limit (%s); the plugin was not restarted",
				sdk.MaxMessageBytes, heldBy(n))
		},
	})
	if n := r.restarts(t); n != 0 {
		t.Errorf("poison restarted %d times, want 0", n)
	}
	if code := r.h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	r.checkState(t, map[string]bool{big: true})
}
