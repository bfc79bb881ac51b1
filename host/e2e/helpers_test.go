package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/publish"
)

const (
	channel     = "purchase_orders"
	orderPrefix = "purchase_order_details:"
)

var bundled = []string{"sales-histogram", "events-summary", "customer-invoices"}

// TestMain removes the binaries testbin built, pass or fail.
func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

// metricsBlock is a metrics block on a port the kernel picks: no race with
// another test for a port found free a moment before. host.metricsAddr reads
// the address back from the host's log.
const metricsBlock = "metrics { listen = \"127.0.0.1:0\" }\n"

// metricsLine is what the host logs once its metrics endpoint is bound.
var metricsLine = regexp.MustCompile(`metrics endpoint listening: address=(\S+)`)

// metricsAddr waits until the host logged the address its metrics endpoint
// bound (config metricsBlock), and returns it. A host that logged several
// (it restarted its endpoint) is read at its last.
func (h *host) metricsAddr(t *testing.T) string {
	t.Helper()
	var addr string
	waitFor(t, 30*time.Second, "the host to log its metrics address", func() bool {
		if m := metricsLine.FindAllStringSubmatch(h.log.String(), -1); len(m) > 0 {
			addr = m[len(m)-1][1]
			return true
		}
		if h.exited() {
			t.Fatalf("eventhost exited before it bound its metrics endpoint; its log ends:\n%s", tail(h.log.String(), 20))
		}
		return false
	})
	return addr
}

// removeSocketDirs removes the plugin socket directories of the host, which
// a host killed with SIGKILL leaves behind (pluginhost.NewSocketDir names
// them after the host's pid). Call it once the host has exited.
func (h *host) removeSocketDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("eventhost-plugins-%d-*", h.cmd.Process.Pid)))
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

// host is an eventhost daemon running as a real subprocess.
type host struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeConfig writes an HCL config for srv with the bundled plugins (plus
// extra blocks) and returns its path.
func writeConfig(t *testing.T, srv *redistest.Server, counter string, extra string) string {
	t.Helper()
	return writeConfigWith(t, srv, fmt.Sprintf(`plugin "sales-histogram" {
  config {
    counter = %q
  }
}
plugin "events-summary" {}
plugin "customer-invoices" {}
%s`, counter, extra))
}

// writeCombinedConfig is writeConfig with the three metrics as one plugin,
// tutorial-metrics.
func writeCombinedConfig(t *testing.T, srv *redistest.Server, counter string) string {
	t.Helper()
	return writeConfigWith(t, srv, fmt.Sprintf(`plugin "tutorial-metrics" {
  config {
    counter = %q
  }
}`, counter))
}

// writeConfigWith writes writeConfig's settings with plugins as its plugin
// blocks and returns the file's path.
func writeConfigWith(t *testing.T, srv *redistest.Server, plugins string) string {
	t.Helper()
	cfg := fmt.Sprintf(`
redis { address = %q }
source "pubsub" { channels = [%q] }
plugin_dir = %q
batch {
  max_orders = 256
  max_wait   = "1ms"
}
log { level = "debug" }
%s
`, srv.Addr, channel, testbin.PluginDir(t), plugins)
	path := filepath.Join(t.TempDir(), "eventhost.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startHost runs `eventhost run` and waits until it is subscribed.
func startHost(t *testing.T, rdb *redis.Client, configPath string) *host {
	t.Helper()
	return startHostEnv(t, rdb, configPath, nil)
}

// startHostEnv is startHost with env ("NAME=value") added to the host's
// environment.
func startHostEnv(t *testing.T, rdb *redis.Client, configPath string, env []string) *host {
	t.Helper()
	h := launchHost(t, configPath, env)
	t.Cleanup(func() {
		h.kill()
		if t.Failed() {
			t.Logf("eventhost log:\n%s", tail(h.log.String(), 80))
		}
	})
	waitCaughtUp(t, h)
	return h
}

// startHostNotReady is startHost without waiting for the host to subscribe
// and catch up; it still prints the host's log when the test fails.
func startHostNotReady(t *testing.T, rdb *redis.Client, configPath string) *host {
	t.Helper()
	h := launchHost(t, configPath, nil)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("eventhost log:\n%s", tail(h.log.String(), 80))
		}
	})
	return h
}

// waitCaughtUp waits until the host is subscribed and caught up (or reads
// its stream): the orders a test publishes from then on arrive live, after
// the catch-up's. (The stream source has no catch-up: its group's pending
// list is the record of unfinished work.)
func waitCaughtUp(t *testing.T, h *host) {
	t.Helper()
	waitFor(t, 30*time.Second, "eventhost to subscribe and catch up", func() bool {
		if h.exited() {
			t.Fatalf("eventhost exited before it was ready; its log ends:\n%s", tail(h.log.String(), 20))
		}
		log := h.log.String()
		return strings.Contains(log, "catch-up done") || strings.Contains(log, "reading stream")
	})
}

// pauseWrites pauses every client's writes on rdb's server (CLIENT PAUSE
// WRITE) for at most a minute, and returns the func that ends the pause; the
// test's end ends it too. A host's first catch-up registers its plugins, a
// write: it waits, and the host stays not ready, for as long as the test
// needs to look.
func pauseWrites(t *testing.T, rdb *redis.Client) (unpause func()) {
	t.Helper()
	ctx := context.Background()
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", "60000", "WRITE").Err(); err != nil {
		t.Fatalf("client pause: %v", err)
	}
	var once sync.Once
	unpause = func() {
		once.Do(func() {
			if err := rdb.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
				t.Errorf("client unpause: %v", err)
			}
		})
	}
	t.Cleanup(unpause)
	return unpause
}

// launchHost runs `eventhost run` with env ("NAME=value") added to the
// host's environment and args after its -config, and returns at once: the host may still be waiting for
// Redis. It is killed when the test ends.
func launchHost(t *testing.T, configPath string, env []string, args ...string) *host {
	t.Helper()
	h := &host{t: t, log: &syncBuffer{}, done: make(chan error, 1)}
	h.cmd = exec.Command(testbin.Eventhost(t), append([]string{"run", "-config", configPath}, args...)...)
	h.cmd.Env = append(os.Environ(), env...)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start eventhost: %v", err)
	}
	go func() { h.done <- h.cmd.Wait() }()
	t.Cleanup(func() {
		h.kill()
		h.removeSocketDirs()
	})
	return h
}

// takeRegistry checks that state holds the plugin registry with exactly
// plugins, each registered at a time, and removes it from state.
func takeRegistry(t *testing.T, state map[string]value, plugins ...string) {
	t.Helper()
	for _, p := range registryProblems(state, plugins...) {
		t.Error(p)
	}
}

// registryProblems is takeRegistry, returning what is wrong instead of
// reporting it.
func registryProblems(state map[string]value, plugins ...string) []string {
	v, ok := state[keyspace.RegistryKey]
	if !ok {
		return []string{fmt.Sprintf("plugin registry %s is missing", keyspace.RegistryKey)}
	}
	delete(state, keyspace.RegistryKey)
	var problems, names []string
	for _, line := range strings.Split(v.Data, "\n") {
		name, when, _ := strings.Cut(line, "=")
		if _, err := strconv.ParseInt(when, 10, 64); err != nil {
			problems = append(problems, fmt.Sprintf("plugin registry: %s registered at %q, want a unix time in ms", name, when))
		}
		names = append(names, name)
	}
	plugins = append([]string(nil), plugins...)
	sort.Strings(plugins)
	if v.Type != "hash" || strings.Join(names, ",") != strings.Join(plugins, ",") {
		problems = append(problems, fmt.Sprintf("plugin registry = %s %q, want a hash of %v", v.Type, v.Data, plugins))
	}
	return problems
}

// exited reports whether the host process has ended, without waiting.
func (h *host) exited() bool {
	select {
	case err := <-h.done:
		h.done <- err
		return true
	default:
		return false
	}
}

func (h *host) kill() {
	if h.cmd.ProcessState == nil {
		_ = h.cmd.Process.Kill()
		<-h.done
		h.done <- nil
	}
}

// stop sends SIGTERM and returns the exit code.
func (h *host) stop(t *testing.T) int {
	t.Helper()
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
		h.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatalf("eventhost did not exit within 30s of SIGTERM")
	}
	return h.cmd.ProcessState.ExitCode()
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitApplied waits until every order in ids carries the done marker of
// every plugin in plugins.
func waitApplied(t *testing.T, rdb redis.Cmdable, ids []string, plugins []string, limit time.Duration) {
	t.Helper()
	remaining := ids
	waitFor(t, limit, fmt.Sprintf("%d orders to be applied by %v", len(ids), plugins), func() bool {
		remaining = unapplied(rdb, remaining, plugins)
		return len(remaining) == 0
	})
}

// unapplied returns the orders in ids that lack the done marker of a plugin
// in plugins, or could not be read.
func unapplied(rdb redis.Cmdable, ids []string, plugins []string) []string {
	ctx := context.Background()
	pipe := rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, orderPrefix+id)
	}
	_, _ = pipe.Exec(ctx)
	var left []string
	for i, c := range cmds {
		for _, p := range plugins {
			if !keyspace.Done(c.Val(), p) {
				left = append(left, ids[i])
				break
			}
		}
	}
	return left
}

func ids(os []publish.Order) []string {
	out := make([]string, len(os))
	for i, o := range os {
		out[i] = o.ID
	}
	return out
}

// value is one key's content, in a form that compares with ==.
type value struct {
	Type string
	// Data is the string's bytes, or the sorted members/fields as lines.
	Data string
}

// dump reads every key matching match (all when empty) from db, in two
// pipelined round trips per SCAN page.
func dump(t *testing.T, rdb *redis.Client, match string) map[string]value {
	t.Helper()
	ctx := context.Background()
	if match == "" {
		match = "*"
	}
	out := map[string]value{}
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			t.Fatal(err)
		}
		dumpKeys(t, rdb, keys, out)
		if cursor = next; cursor == 0 {
			return out
		}
	}
}

// dumpKeys reads keys into out.
func dumpKeys(t *testing.T, rdb *redis.Client, keys []string, out map[string]value) {
	t.Helper()
	if len(keys) == 0 {
		return
	}
	ctx := context.Background()
	pipe := rdb.Pipeline()
	types := make([]*redis.StatusCmd, len(keys))
	for i, k := range keys {
		types[i] = pipe.Type(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	pipe = rdb.Pipeline()
	reads := make([]redis.Cmder, len(keys))
	for i, k := range keys {
		switch types[i].Val() {
		case "string":
			reads[i] = pipe.Get(ctx, k)
		case "hash":
			reads[i] = pipe.HGetAll(ctx, k)
		case "set":
			reads[i] = pipe.SMembers(ctx, k)
		case "zset":
			reads[i] = pipe.ZRangeWithScores(ctx, k, 0, -1)
		case "stream":
			reads[i] = pipe.XRange(ctx, k, "-", "+")
		}
	}
	// A key deleted since TYPE reads as empty; only a failed round trip
	// is an error.
	cmds, _ := pipe.Exec(ctx)
	if err := orders.RoundTripError(cmds); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		typ := types[i].Val()
		var lines []string
		switch c := reads[i].(type) {
		case *redis.StringCmd:
			out[k] = value{Type: typ, Data: c.Val()}
			continue
		case *redis.MapStringStringCmd:
			for f, v := range c.Val() {
				lines = append(lines, f+"="+v)
			}
		case *redis.StringSliceCmd:
			lines = c.Val()
		case *redis.ZSliceCmd:
			for _, z := range c.Val() {
				lines = append(lines, fmt.Sprintf("%v=%v", z.Member, z.Score))
			}
		case *redis.XMessageSliceCmd:
			for _, m := range c.Val() {
				lines = append(lines, fmt.Sprint(m.Values))
			}
		}
		sort.Strings(lines)
		out[k] = value{Type: typ, Data: strings.Join(lines, "\n")}
	}
}

// diffState reports every key that differs between got and want.
func diffState(t *testing.T, got, want map[string]value) {
	t.Helper()
	problems := stateDiff(got, want)
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("… and %d more", len(problems)-20))
		}
		t.Errorf("%d keys differ from the expected state:\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

// stateDiff returns one line for each key that differs between got and
// want, sorted.
func stateDiff(got, want map[string]value) []string {
	var problems []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("key %q missing (want %s)", k, w.Type))
		case g != w && !(g.Type == "hash" && w.Type == "hash" && sameHashButRounding(g.Data, w.Data)):
			problems = append(problems, fmt.Sprintf("key %q differs:\n  got  %s %q\n  want %s %q", k, g.Type, short(g.Data), w.Type, short(w.Data)))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			problems = append(problems, fmt.Sprintf("unexpected key %q (%s)", k, got[k].Type))
		}
	}
	sort.Strings(problems)
	return problems
}

// sameHashButRounding reports whether two hashes (dumped as sorted f=v
// lines) hold the same fields with the same values, numbers within 1e-6 of
// each other. HINCRBYFLOAT rounds every addition it makes in long double;
// eventhost sums a batch's float increments exactly in decimal first, so
// its totals and the tutorial's one-by-one totals differ around the 17th
// digit. A lost or doubled order moves a total by a whole price (cents at
// least), which this still reports.
func sameHashButRounding(got, want string) bool {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	if len(g) != len(w) {
		return false
	}
	tolerance := big.NewRat(1, 1_000_000)
	for i := range g {
		gf, gv, _ := strings.Cut(g[i], "=")
		wf, wv, _ := strings.Cut(w[i], "=")
		if gf != wf {
			return false
		}
		if gv == wv {
			continue
		}
		a, okA := new(big.Rat).SetString(gv)
		b, okB := new(big.Rat).SetString(wv)
		if !okA || !okB || !strings.Contains(gv+wv, ".") {
			return false
		}
		if d := a.Sub(a, b); d.Abs(d).Cmp(tolerance) > 0 {
			return false
		}
	}
	return true
}

func short(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// repoRoot is the repository, seen from this package's directory (where
// go test runs its tests).
const repoRoot = "../.."

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// catchUpLine is the host's log line for a finished catch-up.
var catchUpLine = regexp.MustCompile(`catch-up done: orders_scanned=\d+ unfinished=(\d+)`)

// reconnectCatchUps counts the catch-ups of one host's log after a
// reconnect (every one after the catch-up of its start; the chaos does not
// reload), and sums the unfinished orders they found.
func reconnectCatchUps(log string) (runs, found int) {
	for i, m := range catchUpLine.FindAllStringSubmatch(log, -1) {
		if n, err := strconv.Atoi(m[1]); err == nil && i > 0 {
			runs++
			found += n
		}
	}
	return runs, found
}
