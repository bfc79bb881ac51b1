package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/publish"
)

// These tests run the bundled plugins next to liar, a plugin that misbehaves
// on purpose (host/internal/testplugins/liar), and check that a fault in one
// plugin costs exactly that plugin's (plugin, order) pairs: they land in the
// dead-letter stream or are retried, while the bundled plugins' state stays
// identical to the tutorial's.
//
// Every test has its own redis-server and eventhost, so they run in parallel:
// most of their time is eventhost's shutdown (see source/pubsub.go).

// TestPluginFaultRefusedOrders: a plugin that fails single orders (an error,
// a command off the allowlist, a key outside its patterns) loses exactly
// those (plugin, order) pairs to the dead-letter stream; its other orders and
// the other plugins are unaffected.
func TestPluginFaultRefusedOrders(t *testing.T) {
	tests := []struct {
		name     string
		mode     string
		attempts int // a transient error is tried max_attempts (3) times
		reason   []string
	}{
		{"error", "error", 3, []string{"liar refuses order "}},
		{"permanent error", "permanent", 1, []string{"liar refuses order ", "for good"}},
		{"forbidden command", "forbidden", 1, []string{`"DEL"`, "not allowed"}},
		{"key outside patterns", "outside", 1, []string{"sales_summary", "outside"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const match = "7"
			r := startFaultRun(t, int64(301+i), "", map[string]string{"mode": tt.mode, "match": match})
			r.publish(t, 300)
			r.waitSettled(t)
			r.finish(t)

			dead, ok := matchingIDs(r.published, match)
			if len(dead) == 0 || len(ok) == 0 {
				t.Fatalf("match %q selects %d of %d orders: the test needs some of each", match, len(dead), len(r.published))
			}
			letters := r.checkLetters(t, dead, tt.attempts, tt.reason...)
			for _, e := range letters {
				if !strings.Contains(e.Reason, e.OrderID) && tt.mode != "forbidden" && tt.mode != "outside" {
					t.Errorf("dead letter for %s: reason %q names another order", e.OrderID, e.Reason)
					break
				}
			}
			r.checkLiar(t, ok)
			r.checkBundled(t)
		})
	}
}

// TestPluginFaultFlaky: a plugin that fails each order once gets every one
// of them again, alone: all its orders land, nothing is dead-lettered, and
// the other plugins' effects are applied once (checkBundled is exact).
func TestPluginFaultFlaky(t *testing.T) {
	r := startFaultRun(t, 311, "", map[string]string{"mode": "flaky", "match": "7"})
	r.publish(t, 300)
	r.waitSettled(t)
	waitFor(t, 30*time.Second, "liar to record every order", func() bool {
		n, _ := r.rdb.SCard(context.Background(), liarOrders).Result()
		return int(n) == len(r.published)
	})
	r.finish(t)
	r.checkLetters(t, nil, 0)
	r.checkLiar(t, allIDs(r.published))
	r.checkBundled(t)
	retried, _ := matchingIDs(r.published, "7")
	if got := strings.Count(r.h.log.String(), "retrying it on that plugin"); got != len(retried) {
		t.Errorf("%d retries logged, want one per matching order (%d)", got, len(retried))
	}
}

// TestPluginFaultHang: a plugin that hangs past its timeout on one order is
// killed and relaunched, and the host retries the halves of the batch until
// that order stands alone: only it is dead-lettered, with the calls that
// held it, and nothing else is lost or applied twice.
func TestPluginFaultHang(t *testing.T) {
	t.Parallel()
	const hangID = "401-0000150" // ids are <seed>-<n, 7 digits>
	// The timeout leaves a loaded machine room for a batch's real gRPC
	// round trip (300ms did not, with the tests in parallel on 2 cores).
	r := startFaultRun(t, 401, `  timeout = "3s"
  max_attempts = 2`, map[string]string{"mode": "hang", "match": hangID, "hang": "10m"})
	r.publish(t, 300)
	r.waitSettled(t)
	r.finish(t)

	if !allIDs(r.published)[hangID] {
		t.Fatalf("%s was not published", hangID)
	}
	letters := r.checkLetters(t, map[string]bool{hangID: true}, 0)
	for _, e := range letters {
		// Alone or in a batch, the order is tried at least max_attempts
		// times; in a batch of n, log2(n)+1 times.
		want := fmt.Sprintf("plugin hung on this order: no answer within 3s (%d calls holding it failed, the last with it alone)", e.Attempts)
		if e.Attempts < 2 || e.Reason != want {
			t.Errorf("dead letter for %s: attempts %d, reason %q; want at least 2 and %q", e.OrderID, e.Attempts, e.Reason, want)
		}
	}
	applied := allIDs(r.published)
	delete(applied, hangID)
	r.checkLiar(t, applied)
	r.checkBundled(t)
}

// TestPluginFaultCrashOnce: a plugin that crashes once is relaunched and the
// batch retried, so nothing is lost.
func TestPluginFaultCrashOnce(t *testing.T) {
	t.Parallel()
	// The crash file outlives the crashed process, so it lies outside the
	// plugin's sandbox: Landlock off (simulated) for this test, and a
	// directory the plugins' user may write.
	dir, err := os.MkdirTemp("", "eventhost-crash-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	crashFile := filepath.Join(dir, "crashed")
	r := startFaultRunEnv(t, 501, "", map[string]string{"mode": "crash", "crash_file": crashFile},
		[]string{"EVENTHOST_SANDBOX_SIMULATE_MISSING=landlock_fs"})
	r.publish(t, 300)
	r.waitSettled(t)
	r.finish(t)

	if _, err := os.Stat(crashFile); err != nil {
		t.Errorf("liar never crashed: %v", err)
	}
	if !strings.Contains(r.h.log.String(), "plugin restarted") {
		t.Errorf("host log does not mention the plugin being restarted")
	}
	r.checkLetters(t, nil, 0)
	all := allIDs(r.published)
	r.checkLiar(t, all)
	r.checkBundled(t)
}

// TestPluginFaultKilled: a plugin process killed from outside (OOM killer,
// an operator) is relaunched and its batch retried, whether it dies between
// batches or while orders are arriving.
func TestPluginFaultKilled(t *testing.T) {
	t.Parallel()
	r := startFaultRun(t, 601, "", nil)
	ctx := context.Background()
	killed := map[int]bool{}
	kill := func() {
		t.Helper()
		pid := r.waitLiarPID(t, killed)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill liar (pid %d): %v", pid, err)
		}
		killed[pid] = true
	}
	// Killed while idle, three times: the next batch finds it dead.
	for range 3 {
		kill()
		r.publish(t, 100)
		waitApplied(t, r.rdb, ids(r.published), append([]string{liarName}, bundled...), 60*time.Second)
	}
	// Killed while orders stream in (1000/s for 300ms).
	done := make(chan error, 1)
	var streamed []publish.Order
	go func() {
		var err error
		streamed, err = r.pub.PublishMany(ctx, r.gen, 300, 1000, nil)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	kill()
	if err := <-done; err != nil {
		t.Fatalf("publish: %v", err)
	}
	r.published = append(r.published, streamed...)
	// A last chunk, so that a relaunch is due even if the kill landed after
	// the last streamed batch.
	r.publish(t, 50)
	r.waitSettled(t)
	r.finish(t)

	if n := strings.Count(r.h.log.String(), "plugin restarted"); n != len(killed) {
		t.Errorf("host log has %d plugin restarts, want %d (one per kill)", n, len(killed))
	}
	r.checkLetters(t, nil, 0)
	all := allIDs(r.published)
	r.checkLiar(t, all)
	r.checkBundled(t)
}

// TestPluginFaultCrashLoop: a plugin that crashes on every order convicts
// every order it is given, alone; after restart_limit+1 such orders in a
// row, with no successful call between them, the host disables it: from
// then on its orders go straight to the dead-letter stream, each exactly
// once, and the other plugins keep going.
func TestPluginFaultCrashLoop(t *testing.T) {
	t.Parallel()
	r := startFaultRun(t, 701, `  restart_limit = 2
  max_attempts = 2`, map[string]string{"mode": "crash"})
	// Three chunks, each settled before the next, so that at least the
	// second and third arrive after the plugin was disabled.
	var chunks [][]publish.Order
	for range 3 {
		chunks = append(chunks, r.publish(t, 100))
		r.waitSettled(t)
	}
	r.finish(t)

	if !strings.Contains(r.h.log.String(), "PLUGIN DISABLED") {
		t.Errorf("host log does not report the plugin disabled")
	}
	all := allIDs(r.published)
	letters := r.checkLetters(t, all, 0)
	r.checkLiar(t, nil)
	r.checkBundled(t)

	// The stream holds restart_limit+1 = 3 orders convicted alone, then
	// the orders of the batch in which the third was convicted that were
	// not isolated yet (tried at least once), then orders refused without
	// a try (0 attempts), which include every order of the later chunks.
	later := map[string]bool{}
	for _, chunk := range chunks[1:] {
		for _, o := range chunk {
			later[o.ID] = true
		}
	}
	const convicted = 3
	isolating, refused := 0, 0
	for i, e := range letters {
		poison := fmt.Sprintf("plugin crashed on this order: its process died handling it (%d calls holding it failed, the last with it alone)", e.Attempts)
		during := fmt.Sprintf("plugin disabled after repeated crashes: the host was looking for the order that failed its batch (%d calls holding this order failed)", e.Attempts)
		switch {
		case i < convicted && (e.Reason != poison || e.Attempts < 2 || later[e.OrderID]):
			t.Errorf("dead letter %d (%s): reason %q, attempts %d; want a first-chunk order convicted alone after at least 2 calls", i, e.OrderID, e.Reason, e.Attempts)
		case i >= convicted && e.Attempts > 0 && (refused > 0 || e.Reason != during || later[e.OrderID]):
			t.Errorf("dead letter %d (%s): reason %q, attempts %d; want a first-chunk order failed as disabled while isolating, before any refused", i, e.OrderID, e.Reason, e.Attempts)
		case i >= convicted && e.Attempts > 0:
			isolating++
		case i >= convicted && e.Reason != "plugin disabled after repeated crashes":
			t.Errorf("dead letter %d (%s): reason %q, want the plugin disabled", i, e.OrderID, e.Reason)
		case i >= convicted:
			refused++
		}
		if t.Failed() {
			break
		}
	}
	if refused < len(later) {
		t.Errorf("%d orders refused as disabled, want at least the %d of the later chunks", refused, len(later))
	}
	t.Logf("%d orders convicted alone, %d failed as disabled while isolating, %d refused as disabled", convicted, isolating, refused)
}

// TestHealthEndpoints: /healthz answers while the process runs; /readyz
// says 503 until the host is subscribed with its plugins registered, 200
// then with every plugin up, and 503 again once a plugin is disabled,
// naming it. (TestReadyWhileCatchingUp: ready does not wait for the scan.)
func TestHealthEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	srv := redistest.Start(t)
	rdb := srv.Client()
	cfg := writeConfig(t, srv, "u8", "metrics {\n  listen = \"127.0.0.1:0\"\n  pprof  = true\n}\n"+
		liarBlock(t, "  restart_limit = 1\n  max_attempts = 2", map[string]string{"mode": "crash"}))
	// Writes paused: the first catch-up cannot register the plugins, so
	// the host stays subscribed but not ready until the pause ends.
	unpause := pauseWrites(t, rdb)
	h := startHostNotReady(t, rdb, cfg)
	addr := h.metricsAddr(t)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	code, body := get("/readyz")
	if want := "not ready: not yet subscribed with every plugin registered"; code != http.StatusServiceUnavailable || body != want {
		t.Errorf("/readyz before the plugins are registered = %d %q, want 503 %q", code, body, want)
	}
	unpause()
	waitCaughtUp(t, h)
	if code, body := get("/readyz"); code != http.StatusOK || body != "ready" {
		t.Errorf("/readyz once caught up = %d %q, want 200 ready", code, body)
	}
	if code, body := get("/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ with pprof = true: %d, want 200 and the profile index", code)
	}
	// Two orders: liar dies on each, alone, twice (max_attempts): two
	// orders convicted in a row, more than restart_limit 1: disabled.
	if _, err := publish.NewPublisher(rdb, channel, orderPrefix).PublishMany(t.Context(), publish.NewGenerator(4242), 2, 0, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "liar to be disabled", func() bool {
		return strings.Contains(h.log.String(), "PLUGIN DISABLED")
	})
	code, body = get("/readyz")
	if want := "not ready: plugins down (relaunching or disabled): liar"; code != http.StatusServiceUnavailable || body != want {
		t.Errorf("/readyz with liar disabled = %d %q, want 503 %q", code, body, want)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with a plugin disabled = %d, want 200: the process is alive", code)
	}
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
}
