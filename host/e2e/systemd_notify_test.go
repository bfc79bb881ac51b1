package e2e

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
)

// notification is one datagram the host sent to the notify socket.
type notification struct {
	msg string
	at  time.Time
	// subscribers and publishErr: see TestSystemdNotify.
	subscribers int64
	publishErr  error
	// registry is the plugin registry when READY=1 came.
	registry map[string]string
}

// TestSystemdNotify runs the host as a Type=notify unit with WatchdogSec would:
// NOTIFY_SOCKET names a real unixgram socket, WATCHDOG_USEC is set (and
// WATCHDOG_PID is not, as the test cannot know the pid before the start).
// READY=1 must come only once the host is subscribed: an order published the
// moment READY=1 arrives must be processed. Watchdog pings must follow at half
// the interval, SIGHUP must reload (RELOADING=1, then READY=1 again) without
// stopping the host, and SIGTERM must bring STOPPING=1 and exit 0.
func TestSystemdNotify(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	pub := publish.NewPublisher(rdb, channel, orderPrefix)
	first := publish.NewGenerator(4).Next()

	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	notes := make(chan notification, 1000)
	go func() {
		defer close(notes)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			note := notification{msg: string(buf[:n]), at: time.Now()}
			if note.msg == "READY=1" {
				// What a unit ordered after eventhost does first: Pub/Sub
				// drops it unless the host already listens.
				subs, _ := rdb.PubSubNumSub(ctx, channel).Result()
				note.subscribers = subs[channel]
				// The first catch-up registers the plugins (a read:
				// it is not held up by the write pause below).
				note.registry, _ = rdb.HGetAll(ctx, keyspace.RegistryKey).Result()
				// Bounded: a READY=1 sent too early (writes still
				// paused) must fail the test, not hang it.
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				note.publishErr = pub.Publish(pctx, first)
				cancel()
			}
			notes <- note
		}
	}()

	const watchdog = time.Second
	// Writes paused: the host subscribes, but its first catch-up cannot
	// register the plugins until the pause ends, so READY=1 must wait.
	unpause := pauseWrites(t, rdb)
	h := launchHost(t, writeConfig(t, srv, "u32", ""),
		[]string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=" + strconv.FormatInt(watchdog.Microseconds(), 10)})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("eventhost log:\n%s", tail(h.log.String(), 80))
		}
	})
	waitFor(t, 30*time.Second, "the host to subscribe", func() bool {
		return strings.Contains(h.log.String(), "source: subscribed")
	})
	var got []notification
	// await collects notifications until cond holds for the last one.
	await := func(what string, limit time.Duration, cond func(notification) bool) notification {
		t.Helper()
		deadline := time.After(limit)
		for {
			select {
			case n, ok := <-notes:
				if !ok {
					t.Fatalf("notify socket closed while waiting for %s; got %q", what, messages(got))
				}
				got = append(got, n)
				if cond(n) {
					return n
				}
			case <-deadline:
				t.Fatalf("no %s within %s; got %q", what, limit, messages(got))
			}
		}
	}
	is := func(msg string) func(notification) bool { return func(n notification) bool { return n.msg == msg } }

	// The host logs "subscribed" right before it would send an early
	// READY=1; a watchdog ping after that one (they come every 500ms)
	// shows READY=1 was not sent then.
	early := await("a watchdog ping after the subscription", 10*time.Second, func(n notification) bool {
		return n.msg == "WATCHDOG=1" || n.msg == "READY=1"
	})
	ready := early
	if early.msg == "READY=1" {
		t.Errorf("READY=1 came while the first catch-up waited for Redis: at subscription, before the plugins were registered")
	} else {
		unpause()
		ready = await("READY=1", 30*time.Second, is("READY=1"))
	}
	unpause()
	if ready.subscribers < 1 {
		t.Errorf("READY=1 came while %d clients were subscribed to %s: before the host subscribed", ready.subscribers, channel)
	}
	if len(ready.registry) != len(bundled) {
		t.Errorf("READY=1 came with plugin registry %v: before the first catch-up registered the %d plugins", ready.registry, len(bundled))
	}
	for p, when := range ready.registry {
		if _, err := strconv.ParseInt(when, 10, 64); err != nil {
			t.Errorf("READY=1 came with plugin %s registered at %q: before its catch-up", p, when)
		}
	}
	if ready.publishErr != nil {
		t.Fatalf("publish on READY=1: %v", ready.publishErr)
	}
	waitApplied(t, rdb, []string{first.ID}, bundled, 30*time.Second)

	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	await("RELOADING=1", 10*time.Second, func(n notification) bool { return strings.HasPrefix(n.msg, "RELOADING=1\nMONOTONIC_USEC=") })
	await("READY=1 after the reload", 30*time.Second, is("READY=1"))
	waitFor(t, 10*time.Second, "the host to log that the reload was applied", func() bool {
		return strings.Contains(h.log.String(), "reload applied")
	})
	var pings []time.Time
	await("3 watchdog pings", 10*watchdog, func(n notification) bool {
		if n.msg == "WATCHDOG=1" {
			pings = append(pings, n.at)
		}
		return len(pings) == 3
	})
	if gap := pings[2].Sub(pings[0]) / 2; gap < watchdog/4 || gap > watchdog {
		t.Errorf("watchdog pings %s apart on average, want about half of WATCHDOG_USEC (%s)", gap, watchdog/2)
	}
	second := publish.NewGenerator(5).Next()
	if err := pub.Publish(ctx, second); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, rdb, []string{second.ID}, bundled, 30*time.Second)

	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	await("STOPPING=1", 5*time.Second, is("STOPPING=1"))

	readies := 0
	for _, n := range got {
		if n.msg == "READY=1" {
			readies++
		}
	}
	if readies != 2 {
		t.Errorf("READY=1 sent %d times, want twice (start, reload); got %q", readies, messages(got))
	}
	if !hasPrefix(got, "STATUS=subscribed to") {
		t.Errorf("no STATUS= line saying the host subscribed; got %q", messages(got))
	}
	t.Logf("notifications: %q", messages(got))
	if log := h.log.String(); strings.Contains(log, "could not notify systemd") {
		t.Errorf("the host could not reach the notify socket:\n%s", tail(log, 20))
	}
}

func messages(ns []notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.msg
	}
	return out
}

func hasPrefix(ns []notification, prefix string) bool {
	for _, n := range ns {
		if strings.HasPrefix(n.msg, prefix) {
			return true
		}
	}
	return false
}
