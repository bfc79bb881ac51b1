package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
)

// resumedLine is the pipeline's log line when a pause ends.
var resumedLine = regexp.MustCompile(`resumed: Redis takes writes again: was="([^"]+)" paused_for=(\S+)`)

// TestSentinelFailover runs the host against a master, a replica and three
// sentinels, kills the master while the host has a backlog, and checks that
// the host pauses (not ready), follows the promoted replica by itself, and
// leaves exactly the tutorial's state: no order lost, none counted twice.
//
// Just before the kill the replica is cut off from the master (it cannot
// authenticate), so the host's applies in that window are acknowledged by
// the master and never replicated: the failover loses them, effects and
// done markers together, as asynchronous replication does. The orders
// themselves were replicated before the cut, so the catch-up after the
// reconnect finds them unfinished and counts them once.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	ctx := context.Background()
	set := redistest.StartSentinel(t)
	cfg := fmt.Sprintf(`
redis {
  sentinel {
    master_name = %q
    addresses   = [%s]
  }
}
source "pubsub" { channels = [%q] }
plugin_dir = %q
batch {
  max_orders = 256
  max_wait   = "1ms"
}
%s
plugin "sales-histogram" {
  config {
    counter = "u8"
  }
}
plugin "events-summary" {}
plugin "customer-invoices" {}
`, set.MasterName, quoteList(set.SentinelAddrs()), channel, testbin.PluginDir(t), metricsBlock)
	path := filepath.Join(t.TempDir(), "eventhost.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The producer and the test follow the master through Sentinel too.
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: set.MasterName, SentinelAddrs: set.SentinelAddrs()})
	t.Cleanup(func() { _ = rdb.Close() })
	h := startHost(t, rdb, path)
	readyz := "http://" + h.metricsAddr(t) + "/readyz"

	// A backlog the host is still working through when the master dies.
	gen := publish.NewGenerator(2031)
	first := make([]publish.Order, 12000)
	for i := range first {
		first[i] = gen.Next()
	}
	for i := 0; i < len(first); i += 500 {
		if _, err := storeAndPublish(ctx, rdb, first[i:i+500], false); err != nil {
			t.Fatal(err)
		}
	}
	master := set.Master.Client()
	waitFor(t, time.Minute, "3,000 orders applied", func() bool {
		return len(first)-len(unapplied(master, ids(first), bundled)) >= 3000
	})
	// Orders stored now, on both nodes, and announced only once the
	// replica is cut off: however fast the host works through the
	// backlog, the master then applies some of them alone.
	later := make([]publish.Order, 3000)
	// And a last few, announced the moment before the master is killed:
	// however fast the host finished the rest, it is then working on a
	// batch, so the kill must pause it.
	last := make([]publish.Order, 1000)
	store := rdb.Pipeline()
	for i := range later {
		later[i] = gen.Next()
		store.HSet(ctx, orderPrefix+later[i].ID, later[i].Fields()...)
	}
	for i := range last {
		last[i] = gen.Next()
		store.HSet(ctx, orderPrefix+last[i].ID, last[i].Fields()...)
	}
	if _, err := store.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if acked, err := master.Do(ctx, "WAIT", 1, 10000).Int(); err != nil || acked != 1 {
		t.Fatalf("WAIT for the replica to hold the stored orders: %d replicas, %v", acked, err)
	}
	// Cut the replica off, then let the host apply more on the master alone.
	replica := set.Replica.Client()
	if err := replica.ConfigSet(ctx, "masterauth", "not-the-password").Err(); err != nil {
		t.Fatal(err)
	}
	if err := master.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the replica's link to be down", func() bool {
		info, _ := replica.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:down")
	})
	cutApplied := len(first) - len(unapplied(master, ids(first), bundled))
	announce := rdb.Pipeline()
	for _, o := range later {
		announce.Publish(ctx, channel, o.ID)
	}
	if _, err := announce.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	first = append(first, later...)
	var atKill []string
	waitFor(t, time.Minute, "500 more orders applied on the cut-off master", func() bool {
		left := unapplied(master, ids(first), bundled)
		if len(first)-len(left) < cutApplied+500 {
			return false
		}
		atKill = appliedOf(ids(first), left)
		return true
	})
	announce = rdb.Pipeline()
	for _, o := range last {
		announce.Publish(ctx, channel, o.ID)
	}
	if _, err := announce.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	first = append(first, last...)
	killed := time.Now()
	set.Master.Kill()
	t.Logf("killed the master with %d of %d orders applied on it (%d after the replica was cut off)", len(atKill), len(first), len(atKill)-cutApplied)

	waitFor(t, 30*time.Second, "the host to report not ready", func() bool { return !isReady(readyz) })
	addr := ""
	waitFor(t, time.Minute, "the sentinels to promote the replica", func() bool {
		addr, _ = set.MasterAddr(ctx)
		return addr == set.Replica.Addr
	})
	waitFor(t, time.Minute, "the host to be ready again", func() bool { return isReady(readyz) })

	// Orders keep coming after the failover.
	second := make([]publish.Order, 3000)
	for i := range second {
		second[i] = gen.Next()
	}
	if _, err := storeAndPublish(ctx, rdb, second, false); err != nil {
		t.Fatal(err)
	}
	all := append(append([]publish.Order(nil), first...), second...)
	promoted := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = promoted.Close() })
	waitApplied(t, promoted, ids(all), bundled, 2*time.Minute)
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}

	checkOrderHashes(t, promoted, all, bundled)
	checkTutorialStateAnyOrder(t, promoted, all)
	recounted := appliedAfter(t, promoted, atKill, killed)
	if recounted == 0 {
		t.Errorf("no order applied on the old master was applied again after the failover: the test did not lose a write")
	}
	var pauses []string
	for _, m := range resumedLine.FindAllStringSubmatch(h.log.String(), -1) {
		pauses = append(pauses, m[2]+" ("+m[1]+")")
	}
	if len(pauses) == 0 {
		t.Errorf("the host never logged the end of a pause")
	}
	runs, found := reconnectCatchUps(h.log.String())
	t.Logf("failover: host paused %s; %d catch-ups after the reconnect found %d unfinished orders; "+
		"%d orders whose effects the old master had acknowledged were lost with it and counted again, once; "+
		"%d orders exact, none lost, none doubled", strings.Join(pauses, ", "), runs, found, recounted, len(all))
}

// isReady reports whether GET url answers 200.
func isReady(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// appliedOf returns the ids of all that are not in left.
func appliedOf(all, left []string) []string {
	skip := make(map[string]bool, len(left))
	for _, id := range left {
		skip[id] = true
	}
	var out []string
	for _, id := range all {
		if !skip[id] {
			out = append(out, id)
		}
	}
	return out
}

// appliedAfter counts the orders in ids whose done markers were set after
// t0 (a marker holds its apply time: a field in unix microseconds, a list
// in milliseconds, read by doneView as the start of its millisecond).
func appliedAfter(t *testing.T, rdb *redis.Client, ids []string, t0 time.Time) int {
	t.Helper()
	ctx := context.Background()
	pipe := rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, orderPrefix+id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("read done markers: %v", err)
	}
	n := 0
	for _, c := range cmds {
		s := doneView(c.Val())[keyspace.DoneField(bundled[0])]
		us, err := strconv.ParseInt(s, 10, 64)
		if err == nil && us > t0.UnixMicro() {
			n++
		}
	}
	return n
}
