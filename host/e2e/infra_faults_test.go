package e2e

import (
	"context"
	"fmt"
	"net/http"
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
	"github.com/eventhost/eventhost/host/publish"
)

// TestInfraRedisRestart kills Redis (kill -9) under a running host and starts
// it again: the host must resubscribe by itself and go on, and nothing that
// was published may be lost or applied twice.
func TestInfraRedisRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	// appendfsync always: everything the host applied before the kill is on
	// disk, so the expected state is exact.
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	rdb := srv.Client()
	ctx := context.Background()
	h := startHost(t, rdb, writeConfig(t, srv, "u8", ""))

	gen := publish.NewGenerator(3030)
	pub := publish.NewPublisher(rdb, channel, orderPrefix)
	before, err := pub.PublishMany(ctx, gen, 300, 0, nil)
	if err != nil {
		t.Fatalf("publish before the restart: %v", err)
	}
	waitApplied(t, rdb, ids(before), bundled, 60*time.Second)

	srv.Restart()
	waitFor(t, 60*time.Second, "eventhost to resubscribe after the Redis restart", func() bool {
		n, err := rdb.PubSubNumSub(ctx, channel).Result()
		return err == nil && n[channel] >= 1
	})
	after, err := pub.PublishMany(ctx, gen, 300, 0, nil)
	if err != nil {
		t.Fatalf("publish after the restart: %v", err)
	}
	waitApplied(t, rdb, ids(after), bundled, 60*time.Second)
	waitFor(t, 10*time.Second, `"resubscribed after reconnect" in the host log`, func() bool {
		return strings.Contains(h.log.String(), "resubscribed after reconnect")
	})
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}

	all := append(append([]publish.Order(nil), before...), after...)
	checkOrderHashes(t, rdb, all, bundled)
	checkNoDeadLetters(t, rdb)
	checkTutorialState(t, rdb, all)
}

// TestInfraSignalTerm sends SIGTERM while orders flow: the host must exit 0
// after finishing every id it received, every order must be applied by all
// plugins or by none, and no plugin process may survive it.
//
// On Pub/Sub the applied orders must be a prefix of the published ones. On
// the stream source the group says exactly what the host received (the
// entries delivered to it), and the batch is sized so that nothing is sent
// before SIGTERM (max_orders above the orders published, max_wait an hour):
// every entry received sits in the batch being filled, which shutdown must
// send, not drop.
func TestInfraSignalTerm(t *testing.T) {
	for _, stream := range []bool{false, true} {
		name := map[bool]string{false: "pubsub", true: "stream"}[stream]
		t.Run(name, func(t *testing.T) { signalTerm(t, stream) })
	}
}

func signalTerm(t *testing.T, stream bool) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cfg string
	var pub interface {
		PublishMany(context.Context, *publish.Generator, int, float64, func(int)) ([]publish.Order, error)
	}
	if stream {
		// 4096 orders a batch fit a plugin call only with smaller orders
		// than the default limit allows (limits.max_order_bytes).
		cfg = replaceInConfig(t, streamConfig(t, srv, "limits { max_order_bytes = 8192 }\n"), `max_orders = 256
  max_wait   = "1ms"`, `max_orders = 4096
  max_wait   = "1h"`)
		pub = publish.NewStreamPublisher(rdb, channel, orderPrefix)
	} else {
		cfg = writeConfig(t, srv, "u8", "")
		pub = publish.NewPublisher(rdb, channel, orderPrefix)
	}
	h := startHost(t, rdb, cfg)
	children := pluginChildren(t, h.cmd.Process.Pid)
	if len(children) != len(bundled) {
		t.Fatalf("host %d has plugin children %v, want %d", h.cmd.Process.Pid, children, len(bundled))
	}

	const total = 2000
	gen := publish.NewGenerator(4040)
	// The ids the generator will give, so the test can wait for the first
	// ones while the publisher is still going.
	var want []string
	for probe := publish.NewGenerator(4040); len(want) < total; {
		want = append(want, probe.Next().ID)
	}
	var published []publish.Order
	var pubErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		published, pubErr = pub.PublishMany(ctx, gen, total, 1000, nil)
	}()
	// A failed wait must not leave the publisher running.
	t.Cleanup(func() { cancel(); wg.Wait() })
	// SIGTERM once orders are flowing, not before the first one arrived.
	var received int64
	if stream {
		waitFor(t, 60*time.Second, "100 entries to be delivered to the host", func() bool {
			p, err := rdb.XPending(ctx, channel, streamGroup).Result()
			received = p.Count
			return err == nil && p.Count >= 100
		})
	} else {
		waitApplied(t, rdb, want[:100], bundled, 60*time.Second)
	}
	code := h.stop(t)
	wg.Wait()
	if pubErr != nil {
		t.Fatalf("publish: %v", pubErr)
	}
	if code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(h.log.String(), "intake stopped") {
		t.Errorf("host log does not say intake stopped")
	}

	// No plugin process may outlive a host that shut down cleanly: go-plugin
	// kills and reaps them before the host exits, so no waiting here.
	for _, pid := range children {
		if pluginAlive(pid, testbin.PluginDir(t)) {
			t.Errorf("plugin process %d is still alive after the host exited", pid)
		}
	}
	// Other tests' plugins may still be dying (Pdeathsig), hence the wait.
	waitFor(t, 5*time.Second, "no plugin process to be alive", func() bool {
		return len(livePluginProcs(t, testbin.PluginDir(t))) == 0
	})

	// Atomicity: an order is applied by every plugin or by none, and the
	// applied ones are a prefix of the published ones (Pub/Sub and the
	// stream keep order, and the host finishes every id it received).
	applied := 0
	markers := markerCounts(t, rdb, published)
	for i, o := range published {
		switch n := markers[i]; {
		case n == len(bundled):
			if applied != i {
				t.Errorf("order %s (#%d) applied, but order #%d before it was not", o.ID, i, applied)
			}
			applied++
		case n != 0:
			t.Errorf("order %s carries %d of %d done markers: partially applied", o.ID, n, len(bundled))
		}
	}
	t.Logf("SIGTERM after %d of %d orders had been applied (stream: %d delivered)", applied, total, received)
	if applied == 0 {
		t.Fatalf("no order was applied")
	}
	if stream {
		// Entries delivered by the read in flight at SIGTERM stay pending
		// (the next start takes them); none of them may be applied, and
		// every entry Redis delivered is either applied or pending. (A
		// count of deliveries taken before SIGTERM cannot be compared with
		// what was applied: Redis counts a read delivered before the host
		// has its reply, and a reply in flight at SIGTERM is dropped.)
		pending, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: channel, Group: streamGroup, Start: "-", End: "+", Count: total}).Result()
		if err != nil {
			t.Fatal(err)
		}
		groups, err := rdb.XInfoGroups(ctx, channel).Result()
		if err != nil || len(groups) != 1 {
			t.Fatalf("xinfo groups: %v %v", groups, err)
		}
		if read := groups[0].EntriesRead; int64(applied+len(pending)) != read {
			t.Errorf("%d entries delivered, but %d applied and %d pending", read, applied, len(pending))
		}
		for _, p := range pending {
			msgs, err := rdb.XRange(ctx, channel, p.ID, p.ID).Result()
			if err != nil || len(msgs) != 1 {
				t.Fatalf("xrange %s: %v %v", p.ID, msgs, err)
			}
			id, _ := msgs[0].Values[publish.StreamIDField].(string)
			if len(unapplied(rdb, []string{id}, bundled)) == 0 {
				t.Errorf("entry %s (order %s) is applied but still pending", p.ID, id)
			}
		}
		checkNoDeadLetters(t, rdb)
		checkTutorialStateAnyOrder(t, rdb, published[:applied])
		return
	}
	checkNoDeadLetters(t, rdb)
	checkTutorialState(t, rdb, published[:applied])
}

// TestInfraSignalKill kills the host with SIGKILL, which it cannot catch:
// its plugins must still die (Pdeathsig, and the sdk's own parent check).
func TestInfraSignalKill(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	srv := redistest.Start(t)
	rdb := srv.Client()
	h := startHost(t, rdb, writeConfig(t, srv, "u8", ""))
	pub := publish.NewPublisher(rdb, channel, orderPrefix)
	published, err := pub.PublishMany(context.Background(), publish.NewGenerator(5050), 50, 0, nil)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitApplied(t, rdb, ids(published), bundled, 60*time.Second)

	dir := testbin.PluginDir(t)
	children := pluginChildren(t, h.cmd.Process.Pid)
	if len(children) != len(bundled) {
		t.Fatalf("host %d has plugin children %v, want %d", h.cmd.Process.Pid, children, len(bundled))
	}
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 eventhost: %v", err)
	}
	<-h.done
	h.done <- nil
	waitFor(t, 5*time.Second, fmt.Sprintf("plugin processes %v to die with their host", children), func() bool {
		for _, pid := range children {
			if pluginAlive(pid, dir) {
				return false
			}
		}
		return true
	})
	waitFor(t, 5*time.Second, "no plugin process to be alive", func() bool {
		return len(livePluginProcs(t, dir)) == 0
	})
}

// TestInfraAuth runs the host against a Redis that requires a password: a
// wrong one stops it at once with exit 1; the right one, from env(), and an
// ACL user both work.
func TestInfraAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	// redistest.Start cannot take --requirepass: its readiness PING has no
	// password and gets NOAUTH until it gives up. Setting the password once
	// the server is up is the same to the host.
	srv := redistest.Start(t)
	ctx := context.Background()
	if err := srv.Client().ConfigSet(ctx, "requirepass", "s3cret").Err(); err != nil {
		t.Fatalf("config set requirepass: %v", err)
	}
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: "s3cret"})
	t.Cleanup(func() { _ = admin.Close() })
	base := writeConfig(t, srv, "u8", "")

	// A refused login ends the host at once (exit 1) with Redis' reason, and
	// without the password it tried.
	refused := func(t *testing.T, attrs, password string) {
		t.Helper()
		res := runEventhost(t, 10*time.Second, nil, "run", "-config", withRedisBlock(t, base, srv.Addr, attrs))
		if res.code != 1 {
			t.Errorf("eventhost run exited %d, want 1\nstderr:\n%s", res.code, res.stderr)
		}
		if !strings.Contains(res.stderr, "WRONGPASS") && !strings.Contains(res.stderr, "invalid password") {
			t.Errorf("stderr does not mention WRONGPASS or invalid password:\n%s", res.stderr)
		}
		if strings.Contains(res.stdout+res.stderr, password) {
			t.Errorf("the output shows the password:\n%s", res.stderr)
		}
	}
	t.Run("wrong password", func(t *testing.T) {
		refused(t, `password = "wrong-pw-5b7c"`, "wrong-pw-5b7c")
	})

	var all []publish.Order
	pub := publish.NewPublisher(admin, channel, orderPrefix)
	// serve runs the host with cfg over 20 new orders, waits until they are
	// applied, stops it and returns it.
	serve := func(t *testing.T, cfg string, seed int64) *host {
		t.Helper()
		h := startHost(t, admin, cfg)
		batch, err := pub.PublishMany(ctx, publish.NewGenerator(seed), 20, 0, nil)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		all = append(all, batch...)
		waitApplied(t, admin, ids(batch), bundled, 60*time.Second)
		if code := h.stop(t); code != 0 {
			t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
		}
		return h
	}
	t.Run("password from env", func(t *testing.T) {
		t.Setenv("EVENTHOST_TEST_PW", "s3cret")
		h := serve(t, withRedisBlock(t, base, srv.Addr, `password = env("EVENTHOST_TEST_PW")`), 6060)
		if strings.Contains(h.log.String(), "s3cret") {
			t.Errorf("the host log shows the Redis password")
		}
	})

	t.Run("acl user", func(t *testing.T) {
		if err := admin.Do(ctx, "ACL", "SETUSER", "eventhost", "on", ">pw", "~*", "&*", "+@all").Err(); err != nil {
			t.Fatalf("acl setuser: %v", err)
		}
		serve(t, withRedisBlock(t, base, srv.Addr, "username = \"eventhost\"\n  password = \"pw\""), 6061)
	})

	// The least a host needs, as docs/operations.md's Security section lists it:
	// the commands it and the bundled plugins' effects use, its own keys and
	// the plugins' key patterns, and its channel.
	t.Run("least-privilege acl user", func(t *testing.T) {
		rules := strings.Fields(`on >pw2 resetkeys ~purchase_order_details:* ~eventhost:*
			~sales_histogram:* ~sales:* ~sales_summary ~invoices:* resetchannels &purchase_orders
			-@all +ping +hello +subscribe +unsubscribe +hgetall +evalsha +eval +type +exists +hsetnx +xadd
			+hget +hmget +scan +xdel +sintercard +zintercard
			+hincrby +hincrbyfloat +hset +sadd +zincrby +pfadd +bitfield +incrby +hdel`)
		if err := admin.Do(ctx, append([]any{"ACL", "SETUSER", "eventhost-min"}, toAny(rules)...)...).Err(); err != nil {
			t.Fatalf("acl setuser: %v", err)
		}
		h := serve(t, withRedisBlock(t, base, srv.Addr, "username = \"eventhost-min\"\n  password = \"pw2\""), 6062)
		if strings.Contains(h.log.String(), "NOPERM") {
			t.Errorf("the host was refused a command:\n%s", tail(h.log.String(), 40))
		}
	})

	t.Run("acl user with a wrong password", func(t *testing.T) {
		refused(t, "username = \"eventhost\"\n  password = \"acl-wrong-9d2e\"", "acl-wrong-9d2e")
	})
	t.Run("unknown acl user", func(t *testing.T) {
		refused(t, "username = \"nobody-here\"\n  password = \"pw\"", "\"pw\"")
	})

	if t.Failed() {
		return
	}
	checkOrderHashes(t, admin, all, bundled)
	checkNoDeadLetters(t, admin)
	checkTutorialState(t, admin, all)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// markerCounts returns, for each order in os, how many done markers its hash
// holds; a marker of a plugin not in bundled fails the test.
func markerCounts(t *testing.T, rdb *redis.Client, os []publish.Order) []int {
	t.Helper()
	out := make([]int, len(os))
	for i, h := range orderHashes(t, rdb, os) {
		for f := range h {
			if !strings.HasPrefix(f, keyspace.DonePrefix) {
				continue
			}
			if !isBundled(strings.TrimPrefix(f, keyspace.DonePrefix)) {
				t.Errorf("order %s has marker %s of an unknown plugin", os[i].ID, f)
			}
			out[i]++
		}
	}
	return out
}

func isBundled(plugin string) bool {
	for _, p := range bundled {
		if p == plugin {
			return true
		}
	}
	return false
}

// storeOnly stores n orders from gen the way a producer whose PUBLISH was
// lost leaves them: the hash, and no message on the channel.
func storeOnly(t *testing.T, rdb *redis.Client, gen *publish.Generator, n int) []publish.Order {
	t.Helper()
	ctx := context.Background()
	out := make([]publish.Order, n)
	pipe := rdb.Pipeline()
	for i := range out {
		out[i] = gen.Next()
		pipe.HSet(ctx, orderPrefix+out[i].ID, out[i].Fields()...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("store orders: %v", err)
	}
	return out
}

// TestInfraReconnectCatchUp: when the host's Pub/Sub connection is lost and
// it resubscribes (Redis did not restart, the host did not restart), it
// catches up: orders stored while it was not subscribed, whose message it
// never got, are counted, once.
func TestInfraReconnectCatchUp(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	h := startHost(t, rdb, writeConfig(t, srv, "u8", metricsBlock))
	addr := h.metricsAddr(t)
	gen := publish.NewGenerator(3131)
	live, err := publish.NewPublisher(rdb, channel, orderPrefix).PublishMany(ctx, gen, 50, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, rdb, ids(live), bundled, 60*time.Second)
	checkMetric(t, addr, `eventhost_catchup_runs_total{result="done"}`, 1)

	// Only a catch-up can find these: no message announces them.
	unheard := storeOnly(t, rdb, gen, 100)
	if err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatalf("client kill type pubsub: %v", err)
	}
	waitApplied(t, rdb, ids(unheard), bundled, 60*time.Second)
	checkMetric(t, addr, `eventhost_pubsub_reconnects_total`, 1)
	checkMetric(t, addr, `eventhost_catchup_runs_total{result="done"}`, 2)
	checkMetric(t, addr, `eventhost_catchup_orders_total`, float64(len(unheard)))
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	all := append(live, unheard...)
	checkOrderHashes(t, rdb, all, bundled)
	checkNoDeadLetters(t, rdb)
	// Catch-up goes in SCAN order, so float sums may differ in rounding.
	checkTutorialStateAnyOrder(t, rdb, all)
}

// TestReadyWhileCatchingUp: the host is ready (/readyz 200, READY=1) once it
// is subscribed with its plugins registered, without waiting for the catch-up
// scan, which on a large history takes seconds; the orders the scan finds and
// those that arrive live meanwhile are all counted, once.
func TestReadyWhileCatchingUp(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	// Registered an hour ago: the orders stored below are not history, and
	// registering them again is a read, which the pause below lets through.
	for _, p := range bundled {
		if err := rdb.HSet(ctx, keyspace.RegistryKey, p, time.Now().Add(-time.Hour).UnixMilli()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	gen := publish.NewGenerator(3737)
	missed := storeOnly(t, rdb, gen, 100)
	// Writes paused: the scan (a script without the no-writes flag) waits
	// for the pause to end, the whole time the test looks.
	unpause := pauseWrites(t, rdb)
	h := startHostNotReady(t, rdb, writeConfig(t, srv, "u8", metricsBlock))
	addr := h.metricsAddr(t)
	waitFor(t, 30*time.Second, "/readyz to answer 200", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	checkMetric(t, addr, "eventhost_catchup_running", 1)
	if strings.Contains(h.log.String(), "catch-up done") {
		t.Errorf("the catch-up finished while Redis held its scan: the test proves nothing")
	}
	if left := unapplied(rdb, ids(missed), bundled); len(left) != len(missed) {
		t.Errorf("%d of %d stored orders applied while writes were paused", len(missed)-len(left), len(missed))
	}
	unpause()
	live, err := publish.NewPublisher(rdb, channel, orderPrefix).PublishMany(ctx, gen, 20, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := append(missed, live...)
	waitApplied(t, rdb, ids(all), bundled, 60*time.Second)
	checkMetric(t, addr, `eventhost_catchup_runs_total{result="done"}`, 1)
	checkMetric(t, addr, "eventhost_catchup_running", 0)
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	checkOrderHashes(t, rdb, all, bundled)
	checkNoDeadLetters(t, rdb)
	checkTutorialStateAnyOrder(t, rdb, all)
}

// TestLiveOrdersPassCatchUp: while a catch-up feeds the pipeline thousands
// of stored orders, live orders do not queue behind them: a batch takes live
// ids first and found ones fill the rest, and the scan hands its finds over
// at the pace the pipeline takes them. Live orders published once 5,000 of
// 30,000 stored orders are applied are applied before most of the others
// (by the done markers' times). Every order ends counted once.
func TestLiveOrdersPassCatchUp(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	for _, p := range bundled { // registered an hour ago: what is stored is not history
		if err := rdb.HSet(ctx, keyspace.RegistryKey, p, time.Now().Add(-time.Hour).UnixMilli()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	gen := publish.NewGenerator(3838)
	missed := storeOnly(t, rdb, gen, 30000)
	h := startHostNotReady(t, rdb, writeConfig(t, srv, "u8", metricsBlock))
	addr := h.metricsAddr(t)
	series := fmt.Sprintf("eventhost_orders_processed_total{channel=%q,plugin=%q}", channel, "events-summary")
	waitFor(t, 60*time.Second, "5,000 stored orders to be applied", func() bool {
		v, _ := scrapeMetric(t, addr, series)
		return v >= 5000
	})
	live, err := publish.NewPublisher(rdb, channel, orderPrefix).PublishMany(ctx, gen, 5, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := append(missed, live...)
	waitApplied(t, rdb, ids(all), bundled, 120*time.Second)
	doneAt := func(os []publish.Order) []int64 {
		out := make([]int64, len(os))
		for i, h := range orderHashes(t, rdb, os) {
			out[i], _ = strconv.ParseInt(h[keyspace.DoneField("events-summary")], 10, 64)
		}
		return out
	}
	var lastLive int64
	for _, at := range doneAt(live) {
		lastLive = max(lastLive, at)
	}
	after := 0
	for _, at := range doneAt(missed) {
		if at > lastLive {
			after++
		}
	}
	t.Logf("%d of %d stored orders were applied after the live ones", after, len(missed))
	if after < len(missed)/2 {
		t.Errorf("only %d of %d stored orders were applied after the live ones, published once 5,000 were: the live orders queued behind the catch-up", after, len(missed))
	}
	// The scan may also find a live order published while it ran, before
	// that order is applied (seen on a loaded machine): it counts as found,
	// and the done markers still count it once.
	found, _ := scrapeMetric(t, addr, "eventhost_catchup_orders_total")
	if found < float64(len(missed)) || found > float64(len(all)) {
		t.Errorf("eventhost_catchup_orders_total = %v, want the %d stored orders and at most the %d live ones besides", found, len(missed), len(live))
	}
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	checkOrderHashes(t, rdb, all, bundled)
	checkNoDeadLetters(t, rdb)
	checkTutorialStateAnyOrder(t, rdb, all)
}

// TestInfraDrainTimeout: a shutdown that cannot finish the orders it
// received within the drain limit (here a plugin hanging on them, with
// -drain-timeout 1s) gives up on them and exits 1, having applied none of
// them; the next start catches them up, once.
func TestInfraDrainTimeout(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	hang := writeConfig(t, srv, "u8", metricsBlock+liarBlock(t, `  timeout = "10m"`, map[string]string{"mode": "hang", "hang": "10m"}))
	h := launchHost(t, hang, nil, "-drain-timeout", "1s")
	waitCaughtUp(t, h)
	stuck, err := publish.NewPublisher(rdb, channel, orderPrefix).PublishMany(ctx, publish.NewGenerator(3232), 5, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Received: the drain must finish them, and liar hangs on them.
	checkMetric(t, h.metricsAddr(t), `eventhost_orders_received_total{channel="purchase_orders"}`, float64(len(stuck)))
	if code := h.stop(t); code != 1 {
		t.Errorf("eventhost exited %d after SIGTERM with orders it could not finish in 1s, want 1", code)
	}
	if log := h.log.String(); !strings.Contains(log, "orders still unfinished after the drain timeout") {
		t.Errorf("the host log does not report the drain timeout; it ends:\n%s", tail(log, 20))
	}
	if left := unapplied(rdb, ids(stuck), bundled); len(left) != len(stuck) {
		t.Errorf("%d of %d orders applied by a host that gave up on them", len(stuck)-len(left), len(stuck))
	}

	next := startHost(t, rdb, writeConfig(t, srv, "u8", liarBlock(t, "", nil)))
	waitApplied(t, rdb, ids(stuck), append([]string{liarName}, bundled...), 60*time.Second)
	if code := next.stop(t); code != 0 {
		t.Errorf("the next host exited %d after SIGTERM, want 0", code)
	}
	checkNoDeadLetters(t, rdb)
	checkOrderHashes(t, rdb, stuck, append([]string{liarName}, bundled...))
	if n, err := rdb.SCard(ctx, liarOrders).Result(); err != nil || n != int64(len(stuck)) {
		t.Errorf("%s holds %d orders (%v), want %d", liarOrders, n, err, len(stuck))
	}
	if err := rdb.Del(ctx, liarOrders).Err(); err != nil {
		t.Fatal(err)
	}
	checkTutorialState(t, rdb, stuck)
}
