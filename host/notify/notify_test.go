package notify

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// listen creates a notify socket in a temporary directory, points
// NOTIFY_SOCKET at it and returns it.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

// next reads one datagram, failing the test after a second without one.
func next(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func fromEnv(t *testing.T) *Notifier {
	t.Helper()
	n, err := FromEnv(hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMessages(t *testing.T) {
	conn := listen(t)
	n := fromEnv(t)
	tests := []struct {
		name string
		send func()
		want string
	}{
		{"ready", n.Ready, "READY=1"},
		{"stopping", n.Stopping, "STOPPING=1"},
		{"status", func() { n.Status("subscribed to %d\nchannels", 2) }, "STATUS=subscribed to 2 channels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.send()
			if got := next(t, conn); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReloadingCarriesMonotonicTime(t *testing.T) {
	conn := listen(t)
	n := fromEnv(t)
	n.Reloading()
	first := next(t, conn)
	n.Reloading()
	second := next(t, conn)
	usec := func(msg string) int64 {
		lines := strings.Split(msg, "\n")
		if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
			t.Fatalf("got %q, want RELOADING=1 and MONOTONIC_USEC= in one message", msg)
		}
		v, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
		if err != nil || v <= 0 {
			t.Fatalf("MONOTONIC_USEC in %q is not a positive number", msg)
		}
		return v
	}
	if a, b := usec(first), usec(second); b < a {
		t.Errorf("MONOTONIC_USEC went backwards: %d then %d", a, b)
	}
}

// Without NOTIFY_SOCKET nothing is sent and nothing fails, not even on a nil
// Notifier.
func TestWithoutSocketEverythingIsANoOp(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "1000")
	n := fromEnv(t)
	if n != nil {
		t.Fatalf("FromEnv without NOTIFY_SOCKET = %+v, want nil", n)
	}
	n.Ready()
	n.Reloading()
	n.Stopping()
	n.Status("x")
	if d := n.WatchdogInterval(); d != 0 {
		t.Errorf("WatchdogInterval = %s, want 0", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n.Watchdog(ctx, func() error { t.Error("alive called without a watchdog"); return nil })
	if ctx.Err() != nil {
		t.Error("Watchdog without a watchdog interval should return at once")
	}
}

func TestWatchdogEnv(t *testing.T) {
	tests := []struct {
		name, usec, pid string
		want            time.Duration
		wantErr         bool
	}{
		{"unset", "", "", 0, false},
		{"set, no pid", "30000000", "", 30 * time.Second, false},
		{"set for this process", "2000000", strconv.Itoa(os.Getpid()), 2 * time.Second, false},
		{"set for another process", "2000000", "1", 0, false},
		{"malformed", "soon", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			listen(t)
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			n, err := FromEnv(hclog.NewNullLogger())
			if (err != nil) != tt.wantErr {
				t.Fatalf("FromEnv error = %v, want error: %v", err, tt.wantErr)
			}
			if got := n.WatchdogInterval(); got != tt.want {
				t.Errorf("WatchdogInterval = %s, want %s", got, tt.want)
			}
		})
	}
}

// The watchdog pings at half the interval while alive says so, withholds
// pings (and says why in the status) while it does not, and resumes.
func TestWatchdogPingsOnlyWhileAlive(t *testing.T) {
	conn := listen(t)
	t.Setenv("WATCHDOG_USEC", "100000") // 100ms: a ping every 50ms
	n := fromEnv(t)
	var wedged atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Watchdog(ctx, func() error {
			if wedged.Load() {
				return errors.New("pipeline wedged")
			}
			return nil
		})
	}()
	defer func() { cancel(); <-done }()

	start := time.Now()
	for range 3 {
		if got := next(t, conn); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
	}
	if elapsed := time.Since(start); elapsed < 90*time.Millisecond {
		t.Errorf("3 pings in %s: pings come faster than half the interval", elapsed)
	}

	wedged.Store(true)
	deadline := time.Now().Add(time.Second)
	for {
		got := next(t, conn)
		if got == "STATUS=unhealthy: pipeline wedged" {
			break
		}
		if got != "WATCHDOG=1" || time.Now().After(deadline) {
			t.Fatalf("got %q, want the unhealthy status", got)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 64)
	if k, err := conn.Read(buf); err == nil {
		t.Fatalf("got %q while alive reports an error, want no ping", buf[:k])
	}

	wedged.Store(false)
	if got := next(t, conn); got != "STATUS=making progress again" {
		t.Errorf("got %q, want the recovery status", got)
	}
	if got := next(t, conn); got != "WATCHDOG=1" {
		t.Errorf("got %q, want pings to resume", got)
	}
}
