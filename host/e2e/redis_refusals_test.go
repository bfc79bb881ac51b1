package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/publish"
)

// TestRedisRefusalsPause is issue #5's proof for what Redis answers: with
// orders flowing, Redis refuses writes for a while in every way this machine
// can provoke (out of memory, a permission taken away, a failed save with
// stop-writes-on-bgsave-error, a switch to read-only replica), each lifted
// again. The host must never exit, must say on /readyz why it is paused
// while it is, must keep pinging the systemd watchdog (it is alive, just not
// ready), and must end with exactly the tutorial's state: nothing lost,
// nothing counted twice, no dead letter.
func TestRedisRefusalsPause(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	dataDir := t.TempDir()
	srv := redistest.Start(t, "--enable-protected-configs", "yes", "--dir", dataDir, "--stop-writes-on-bgsave-error", "yes", "--save", "3600 1")
	admin := srv.Client()
	ctx := context.Background()
	// The host's own user: the NOPERM phase takes SADD away from it.
	if err := admin.Do(ctx, "ACL", "SETUSER", "eh", "on", ">eh-secret", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	cfg := withRedisBlock(t, writeConfig(t, srv, "u8", metricsBlock),
		srv.Addr, `username = "eh"
  password = "eh-secret"`)

	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var pings atomic.Int64
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) == "WATCHDOG=1" {
				pings.Add(1)
			}
		}
	}()
	const watchdog = time.Second
	h := startHostEnv(t, admin, cfg, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=" + strconv.FormatInt(watchdog.Microseconds(), 10)})
	metricsAddr := h.metricsAddr(t)

	readyz := func() (int, string) {
		resp, err := http.Get("http://" + metricsAddr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}

	gen := publish.NewGenerator(5005)
	var all []publish.Order
	phases := []struct {
		name   string
		reason string // in /readyz and the eventhost_paused label
		impose func() error
		lift   func() error
	}{
		{
			name:   "out of memory",
			reason: "redis out of memory (OOM)",
			impose: func() error { return admin.ConfigSet(ctx, "maxmemory", "1").Err() },
			lift:   func() error { return admin.ConfigSet(ctx, "maxmemory", "0").Err() },
		},
		{
			name:   "permission taken away",
			reason: "redis user lacks permission (NOPERM)",
			impose: func() error { return admin.Do(ctx, "ACL", "SETUSER", "eh", "-sadd").Err() },
			lift:   func() error { return admin.Do(ctx, "ACL", "SETUSER", "eh", "+sadd").Err() },
		},
		{
			name:   "a failed save with stop-writes-on-bgsave-error",
			reason: "redis cannot persist (MISCONF)",
			impose: func() error {
				// The save cannot create its file once the directory is gone.
				if err := os.RemoveAll(dataDir); err != nil {
					return err
				}
				if err := admin.BgSave(ctx).Err(); err != nil {
					return err
				}
				for range 200 {
					info := admin.Info(ctx, "persistence").Val()
					if strings.Contains(info, "rdb_last_bgsave_status:err") && strings.Contains(info, "rdb_bgsave_in_progress:0") {
						return nil
					}
					time.Sleep(25 * time.Millisecond)
				}
				return fmt.Errorf("BGSAVE did not fail")
			},
			lift: func() error {
				if err := os.MkdirAll(dataDir, 0o700); err != nil {
					return err
				}
				// Redis' working directory is the deleted one: point it at the new one.
				if err := admin.ConfigSet(ctx, "dir", dataDir).Err(); err != nil {
					return err
				}
				if err := admin.BgSave(ctx).Err(); err != nil {
					return err
				}
				for range 200 {
					if strings.Contains(admin.Info(ctx, "persistence").Val(), "rdb_last_bgsave_status:ok") {
						return nil
					}
					time.Sleep(25 * time.Millisecond)
				}
				return fmt.Errorf("BGSAVE did not succeed again")
			},
		},
		{
			name:   "read-only replica",
			reason: "redis is a read-only replica (READONLY)",
			impose: func() error {
				// A master that is never there: the data stays, writes are refused.
				return admin.Do(ctx, "REPLICAOF", "127.0.0.1", strconv.Itoa(deadPort(t))).Err()
			},
			lift: func() error { return admin.Do(ctx, "REPLICAOF", "NO", "ONE").Err() },
		},
	}
	type timelineEntry struct {
		at   time.Duration
		what string
	}
	var timeline []timelineEntry
	start := time.Now()
	note := func(format string, args ...any) {
		timeline = append(timeline, timelineEntry{time.Since(start), fmt.Sprintf(format, args...)})
	}
	for _, ph := range phases {
		// Stored while Redis takes writes: the producer's HSET is refused
		// too during a fault, but its PUBLISH is not.
		batch := make([]publish.Order, 300)
		p := admin.Pipeline()
		for i := range batch {
			batch[i] = gen.Next()
			p.HSet(ctx, orderPrefix+batch[i].ID, batch[i].Fields()...)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("%s: store orders: %v", ph.name, err)
		}
		all = append(all, batch...)
		if err := ph.impose(); err != nil {
			t.Fatalf("%s: impose: %v", ph.name, err)
		}
		note("%s imposed", ph.name)
		pingsBefore := pings.Load()
		for i, o := range batch {
			if err := admin.Publish(ctx, channel, o.ID).Err(); err != nil {
				t.Fatalf("%s: publish: %v", ph.name, err)
			}
			if i%50 == 49 {
				time.Sleep(50 * time.Millisecond)
			}
		}
		var body string
		waitFor(t, 20*time.Second, ph.name+": /readyz to say why the host is paused", func() bool {
			code, b := readyz()
			body = b
			return code == http.StatusServiceUnavailable && strings.Contains(b, ph.reason)
		})
		note("/readyz: %s", body)
		checkMetric(t, metricsAddr, fmt.Sprintf("eventhost_paused{reason=%q}", ph.reason), 1)
		// Held for a while: the host must stay up and keep the watchdog fed.
		time.Sleep(2 * watchdog)
		if h.exited() {
			t.Fatalf("%s: eventhost exited; its log ends:\n%s", ph.name, tail(h.log.String(), 30))
		}
		if n := pings.Load() - pingsBefore; n < 2 {
			t.Errorf("%s: %d watchdog pings while paused for over %s, want the host to keep pinging", ph.name, n, 2*watchdog)
		}
		if un := unapplied(admin, ids(batch), bundled); len(un) != len(batch) {
			t.Errorf("%s: %d of %d orders applied while Redis refused writes", ph.name, len(batch)-len(un), len(batch))
		}
		if err := ph.lift(); err != nil {
			t.Fatalf("%s: lift: %v", ph.name, err)
		}
		note("%s lifted", ph.name)
		waitApplied(t, admin, ids(batch), bundled, 60*time.Second)
		waitFor(t, 20*time.Second, ph.name+": /readyz to be ready again", func() bool {
			code, _ := readyz()
			return code == http.StatusOK
		})
		note("resumed by itself: all %d orders applied, /readyz 200", len(batch))
		checkMetric(t, metricsAddr, fmt.Sprintf("eventhost_paused{reason=%q}", ph.reason), 0)
	}
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	var lines []string
	for _, e := range timeline {
		lines = append(lines, fmt.Sprintf("%6.2fs %s", e.at.Seconds(), e.what))
	}
	t.Logf("timeline:\n%s", strings.Join(lines, "\n"))
	checkOrderHashes(t, admin, all, bundled)
	checkNoDeadLetters(t, admin)
	checkTutorialState(t, admin, all)
	t.Logf("%d orders counted through %d refusals, each exactly once, no dead letters", len(all), len(phases))
}

// deadPort returns a loopback port nothing listens on.
func deadPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}
