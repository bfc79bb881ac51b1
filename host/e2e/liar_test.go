package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/internal/procstat"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
)

// liar, a plugin that misbehaves on purpose (host/internal/testplugins/liar),
// and faultRun, an eventhost running it next to the bundled plugins.

const (
	liarName   = "liar"
	liarOrders = "liar:orders"
	// liarCount is the hash liar counts each recorded order in, when asked (count_key).
	liarCount = "liar:count"
	dlStream  = config.DefaultDeadLetterStream
)

// faultRun is one private redis-server with an eventhost running the bundled
// plugins and liar.
type faultRun struct {
	srv *redistest.Server
	rdb *redis.Client
	h   *host
	pub *publish.Publisher
	gen *publish.Generator
	// published is every order published so far, in order.
	published []publish.Order
}

// startFaultRun starts redis and eventhost with liar configured by settings
// (plugin block attributes, one per line) and conf (its config block).
func startFaultRun(t *testing.T, seed int64, settings string, conf map[string]string) *faultRun {
	t.Helper()
	return startFaultRunEnv(t, seed, settings, conf, nil)
}

// startFaultRunEnv is startFaultRun with env ("NAME=value") added to the
// host's environment.
func startFaultRunEnv(t *testing.T, seed int64, settings string, conf map[string]string, env []string) *faultRun {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	srv := redistest.Start(t)
	rdb := srv.Client()
	r := &faultRun{srv: srv, rdb: rdb, pub: publish.NewPublisher(rdb, channel, orderPrefix), gen: publish.NewGenerator(seed)}
	r.h = startHostEnv(t, rdb, writeConfig(t, srv, "u8", liarBlock(t, settings, conf)), env)
	return r
}

// liarBlock is the plugin block for liar.
func liarBlock(t *testing.T, settings string, conf map[string]string) string {
	path := testbin.Build(t, "./host/internal/testplugins/liar", "eventhost-plugin-liar")
	names := make([]string, 0, len(conf))
	for k := range conf {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "plugin %q {\n  path = %q\n%s\n  config {\n", liarName, path, settings)
	for _, k := range names {
		fmt.Fprintf(&b, "    %s = %q\n", k, conf[k])
	}
	b.WriteString("  }\n}\n")
	return b.String()
}

// publish publishes n more orders and returns them.
func (r *faultRun) publish(t *testing.T, n int) []publish.Order {
	t.Helper()
	out, err := r.pub.PublishMany(context.Background(), r.gen, n, 0, nil)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	r.published = append(r.published, out...)
	return out
}

// waitSettled waits until the bundled plugins applied every published order
// and liar accounted for every one, as a write or a dead letter.
func (r *faultRun) waitSettled(t *testing.T) {
	t.Helper()
	waitApplied(t, r.rdb, ids(r.published), bundled, 60*time.Second)
	n := len(r.published)
	waitFor(t, 60*time.Second, fmt.Sprintf("liar to write or dead-letter %d orders", n), func() bool {
		applied, _ := r.rdb.SCard(context.Background(), liarOrders).Result()
		return int(applied)+len(liarLetters(t, r.rdb)) >= n
	})
}

// finish stops eventhost, so that nothing changes under the checks, and
// checks it exited cleanly.
func (r *faultRun) finish(t *testing.T) {
	t.Helper()
	if code := r.h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
}

// checkBundled checks that the bundled plugins' keys are exactly what the
// tutorial's listeners leave for the published orders: liar's failures must
// cost the other plugins nothing, and nothing liar tried outside its patterns
// may have landed.
func (r *faultRun) checkBundled(t *testing.T) {
	t.Helper()
	ref := redis.NewClient(&redis.Options{Addr: r.srv.Addr, DB: 1})
	defer ref.Close()
	replayTutorial(t, ref, r.published, "u8")
	want := dump(t, ref, "")
	got := dump(t, r.rdb, "")
	takeRegistry(t, got, append([]string{"liar"}, bundled...)...)
	for k := range got {
		if strings.HasPrefix(k, orderPrefix) || strings.HasPrefix(k, "liar:") || k == dlStream {
			delete(got, k)
		}
	}
	diffState(t, got, want)
}

// checkLiar checks that liar's own keys are exactly liar:orders holding
// applied, and that every published order hash carries the bundled plugins'
// done markers and liar's marker exactly when it is in applied.
func (r *faultRun) checkLiar(t *testing.T, applied map[string]bool) {
	t.Helper()
	ctx := context.Background()
	var want []string
	for id := range applied {
		want = append(want, id)
	}
	sort.Strings(want)
	got, err := r.rdb.SMembers(ctx, liarOrders).Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s holds %d ids, want %d:\n%s", liarOrders, len(got), len(want), idSetDiff(got, want))
	}
	var keys []string
	for k := range dump(t, r.rdb, "liar:*") {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	wantKeys := ""
	if len(want) > 0 {
		wantKeys = liarOrders
	}
	if strings.Join(keys, ",") != wantKeys {
		t.Errorf("liar's keys are %q, want only %q", keys, wantKeys)
	}

	bad := 0
	for i, h := range orderHashes(t, r.rdb, r.published) {
		id := r.published[i].ID
		for _, p := range append([]string{liarName}, bundled...) {
			_, has := h[keyspace.DoneField(p)]
			if want := p != liarName || applied[id]; has != want && bad < 10 {
				bad++
				t.Errorf("order %s: %s done marker present = %v, want %v", id, p, has, want)
			}
		}
	}
}

// liarLetters returns the dead letters for liar, oldest first, and fails the
// test on a dead letter for anyone else: only liar misbehaves.
func liarLetters(t *testing.T, rdb *redis.Client) []deadletter.Entry {
	t.Helper()
	all, err := deadletter.List(context.Background(), rdb, dlStream, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []deadletter.Entry
	for _, e := range all {
		if e.Plugin != liarName {
			t.Fatalf("dead letter for plugin %q (order %s): %s", e.Plugin, e.OrderID, e.Reason)
		}
		out = append(out, e)
	}
	return out
}

// checkLetters checks that the dead letters are exactly one per id in want,
// each on the order channel with the given attempts and a reason holding
// every one of reason, and returns them.
func (r *faultRun) checkLetters(t *testing.T, want map[string]bool, attempts int, reason ...string) []deadletter.Entry {
	t.Helper()
	letters := liarLetters(t, r.rdb)
	var got, wantIDs []string
	for _, e := range letters {
		got = append(got, e.OrderID)
		if e.Channel != channel {
			t.Errorf("dead letter for %s: channel %q, want %q", e.OrderID, e.Channel, channel)
		}
		if attempts > 0 && e.Attempts != attempts {
			t.Errorf("dead letter for %s: attempts %d, want %d", e.OrderID, e.Attempts, attempts)
		}
		for _, s := range reason {
			if !strings.Contains(e.Reason, s) {
				t.Errorf("dead letter for %s: reason %q does not mention %q", e.OrderID, e.Reason, s)
			}
		}
		if t.Failed() {
			break // one entry's complaints are enough
		}
	}
	for id := range want {
		wantIDs = append(wantIDs, id)
	}
	sort.Strings(got)
	sort.Strings(wantIDs)
	if strings.Join(got, ",") != strings.Join(wantIDs, ",") {
		t.Errorf("%d dead letters for liar, want %d:\n%s", len(got), len(wantIDs), idSetDiff(got, wantIDs))
	}
	return letters
}

// waitLiarPID returns the pid of the running liar process the host started,
// skipping those in gone.
func (r *faultRun) waitLiarPID(t *testing.T, gone map[int]bool) int {
	t.Helper()
	path := testbin.Build(t, "./host/internal/testplugins/liar", "eventhost-plugin-liar")
	host := r.h.cmd.Process.Pid
	var pid int
	waitFor(t, 30*time.Second, "a running liar process", func() bool {
		pid = findLiarChild(host, path, gone)
		return pid != 0
	})
	return pid
}

// findLiarChild scans /proc for a live child of parent running binary, other
// than those in skip; 0 when there is none.
func findLiarChild(parent int, binary string, skip map[int]bool) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if argv0, _, _ := strings.Cut(string(cmdline), "\x00"); argv0 != binary {
			continue
		}
		if st, err := procstat.Read(pid); err != nil || st.State == 'Z' || st.PPID != parent {
			continue
		}
		return pid
	}
	return 0
}
