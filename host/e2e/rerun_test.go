package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
)

// These tests run `eventhost backfill` and `eventhost deadletter` as a user
// does, between and next to runs of the daemon, and check the exact state
// they leave.

// TestBackfill: orders stored before a plugin was first enabled are history
// for it, which the daemon does not count; `eventhost backfill` counts them,
// once: run again, it changes nothing. Interrupted with SIGINT, it finishes
// its batch in flight and stops; run again, next to a running daemon that
// gets new orders meanwhile, it does the rest, and every order is counted
// once by every plugin.
func TestBackfill(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	pub := publish.NewPublisher(rdb, channel, orderPrefix)
	gen := publish.NewGenerator(7001)

	// Stored while no host ran, before any plugin was enabled: history.
	history, err := pub.PublishMany(ctx, gen, 3000, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := writeConfig(t, srv, "u8", "")
	h := startHost(t, rdb, cfgPath)
	live, err := pub.PublishMany(ctx, gen, 500, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, rdb, ids(live), bundled, time.Minute)
	if code := h.stop(t); code != 0 {
		t.Fatalf("eventhost exited %d after SIGTERM, want 0", code)
	}
	checkTutorialState(t, rdb, live)
	checkOrderHashes(t, rdb, history, nil, historyMarkers(bundled...)...)
	checkOrderHashes(t, rdb, live, bundled)
	if t.Failed() {
		t.FailNow()
	}

	for _, p := range bundled {
		res := mustRun(t, 0, "backfill", "-config", cfgPath, "-plugin", p)
		if want := "backfill " + p + ": processed 3000, already done 0, dead-lettered 0 (3000 to do of 3500 orders stored), took "; !strings.HasPrefix(res.stdout, want) {
			t.Errorf("backfill %s: summary %q, want it to start %q", p, res.stdout, want)
		}
	}
	// The bundled plugins counted live first, then history in id order,
	// which is publish order: the tutorial's float sums in that order.
	counted := append(append([]publish.Order{}, live...), history...)
	checkTutorialState(t, rdb, counted)
	checkOrderHashes(t, rdb, history, bundled, historyMarkers(bundled...)...)
	checkOrderHashes(t, rdb, live, bundled)
	takeRegistry(t, dump(t, rdb, keyspace.RegistryKey), bundled...)
	if t.Failed() {
		t.FailNow()
	}

	before := dump(t, rdb, "")
	for _, p := range bundled {
		res := mustRun(t, 0, "backfill", "-config", cfgPath, "-plugin", p)
		if want := "processed 0, already done 0, dead-lettered 0 (0 to do of 3500 orders stored)"; !strings.Contains(res.stdout, want) {
			t.Errorf("backfill %s again: summary %q, want it to say %q", p, res.stdout, want)
		}
	}
	diffState(t, dump(t, rdb, ""), before)
	if t.Failed() {
		t.FailNow()
	}

	// A metric added later: liar, slowed down so that SIGINT lands mid-run.
	// Each order liar records also adds 1 to its field of liar:count: a
	// backfill and the daemon both applying one would show as 2.
	liarCfg := writeConfig(t, srv, "u8", liarBlock(t, "", map[string]string{"mode": "hang", "hang": "1ms", "count_key": liarCount}))
	all := append(append([]publish.Order{}, history...), live...)
	first := interruptBackfill(t, rdb, liarCfg, len(all))
	checkLiarConsistent(t, rdb, all)
	if t.Failed() {
		t.FailNow()
	}

	// Run again while the daemon, now with liar too, gets new orders: they
	// are not history for liar (it was registered by the first run), so
	// the daemon counts them; the backfill may find some of them too.
	h = startHost(t, rdb, liarCfg)
	bf := exec.Command(testbin.Eventhost(t), "backfill", "-config", liarCfg, "-plugin", liarName, "-batch", "20")
	var bfOut, bfErr syncBuffer
	bf.Stdout, bf.Stderr = &bfOut, &bfErr
	if err := bf.Start(); err != nil {
		t.Fatal(err)
	}
	bfDone := make(chan error, 1)
	go func() { bfDone <- bf.Wait() }()
	// A failed test must not leave the backfill running.
	t.Cleanup(func() {
		_ = bf.Process.Kill()
		bfDone <- <-bfDone
	})
	extra, err := pub.PublishMany(ctx, gen, 300, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The ids the backfill works through are announced again meanwhile,
	// so the daemon races it for the same (liar, order) pairs: only the
	// done marker, checked in the apply, keeps each counted once.
	again := rdb.Pipeline()
	for _, o := range all {
		again.Publish(ctx, channel, o.ID)
	}
	if _, err := again.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	err = <-bfDone
	bfDone <- err // for the cleanup
	if err != nil {
		t.Fatalf("backfill %s again: %v\nstdout:\n%s\nstderr:\n%s", liarName, err, bfOut.String(), tail(bfErr.String(), 40))
	}
	t.Logf("first backfill: %s; second: %s", first, strings.TrimSpace(bfOut.String()))
	if strings.Contains(bfOut.String(), "interrupted") {
		t.Errorf("second backfill did not finish: %s", bfOut.String())
	}
	all = append(all, extra...)
	waitApplied(t, rdb, ids(all), append([]string{liarName}, bundled...), time.Minute)
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}

	checkLiarConsistent(t, rdb, all)
	// Next to the daemon, the backfill found some orders done by the time
	// it got to them: together they add up to what it set out to do, and
	// liar counted every order exactly once.
	m := regexp.MustCompile(`processed (\d+), already done (\d+), dead-lettered (\d+) \((\d+) to do of`).FindStringSubmatch(bfOut.String())
	if m == nil {
		t.Fatalf("second backfill's summary %q has no counts", bfOut.String())
	}
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	if processed, done, dead, todo := n(m[1]), n(m[2]), n(m[3]), n(m[4]); processed+done+dead != todo || dead != 0 {
		t.Errorf("second backfill: processed %d + already done %d + dead-lettered %d, want %d to do and none dead", processed, done, dead, todo)
	}
	counts := rdb.HGetAll(ctx, liarCount).Val()
	for id, c := range counts {
		if c != "1" {
			t.Errorf("liar counted order %s %s times", id, c)
		}
	}
	if int64(len(counts)) != rdb.SCard(ctx, liarOrders).Val() {
		t.Errorf("liar counted %d orders but recorded %d", len(counts), rdb.SCard(ctx, liarOrders).Val())
	}
	checkOrderHashes(t, rdb, history, append([]string{liarName}, bundled...), historyMarkers(append([]string{liarName}, bundled...)...)...)
	checkOrderHashes(t, rdb, live, append([]string{liarName}, bundled...), historyMarkers(liarName)...)
	checkOrderHashes(t, rdb, extra, append([]string{liarName}, bundled...))
	got := dump(t, rdb, "")
	takeRegistry(t, got, append([]string{liarName}, bundled...)...)
	delete(got, liarOrders)
	delete(got, liarCount)
	for k := range got {
		if strings.HasPrefix(k, orderPrefix) {
			delete(got, k)
		}
	}
	ref := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: 1})
	defer ref.Close()
	if err := ref.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	replayTutorial(t, ref, append(counted, extra...), "u8")
	diffState(t, got, dump(t, ref, ""))
}

// interruptBackfill starts a backfill of liar (configured to be slow) over
// total orders, sends it SIGINT once part of them is done, and checks that it
// stops cleanly and says what is left. It returns the summary.
func interruptBackfill(t *testing.T, rdb *redis.Client, cfgPath string, total int) string {
	t.Helper()
	ctx := context.Background()
	cmd := exec.Command(testbin.Eventhost(t), "backfill", "-config", cfgPath, "-plugin", liarName, "-batch", "20", "-progress", "100ms")
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitFor(t, time.Minute, "the backfill to process 300 orders", func() bool {
		n, _ := rdb.SCard(ctx, liarOrders).Result()
		return n >= 300
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("backfill after SIGINT: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), tail(stderr.String(), 40))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("backfill did not stop within 30s of SIGINT")
	}
	applied, _ := rdb.SCard(ctx, liarOrders).Result()
	if applied >= int64(total) {
		t.Fatalf("backfill finished all %d orders before SIGINT: make liar slower", total)
	}
	out := strings.TrimSpace(stdout.String())
	want := fmt.Sprintf("processed %d, already done 0, dead-lettered 0 (%d to do of %d orders stored)", applied, total, total)
	if !strings.Contains(out, want) {
		t.Errorf("interrupted backfill: summary %q, want it to say %q", out, want)
	}
	wantLine(t, out, fmt.Sprintf("interrupted: %d orders left; run the same command again to carry on", int64(total)-applied))
	if !regexp.MustCompile(`backfill liar: progress: done=\d+ total=` + strconv.Itoa(total) + ` rate=\d+/s eta=`).MatchString(stderr.String()) {
		t.Errorf("no progress line in the backfill's log:\n%s", tail(stderr.String(), 20))
	}
	return out
}

// checkLiarConsistent checks that liar:orders holds exactly the orders of os
// whose hash carries liar's done marker, each once: an interrupted backfill
// leaves no order half done.
func checkLiarConsistent(t *testing.T, rdb *redis.Client, os []publish.Order) {
	t.Helper()
	ctx := context.Background()
	var marked []string
	for i, h := range orderHashes(t, rdb, os) {
		if _, ok := h[keyspace.DoneField(liarName)]; ok {
			marked = append(marked, os[i].ID)
		}
	}
	got, err := rdb.SMembers(ctx, liarOrders).Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	sort.Strings(marked)
	if strings.Join(got, ",") != strings.Join(marked, ",") {
		t.Errorf("%s holds %d ids, %d orders carry liar's done marker:\n%s", liarOrders, len(got), len(marked), idSetDiff(got, marked))
	}
}

// TestDeadletterReplay: orders a plugin failed are listed, then replayed
// once the plugin is fixed: each lands once, its dead letter is deleted with
// it, and replaying again (or a stale duplicate entry) changes nothing. An
// entry for a plugin no longer configured stays; a bad order whose hash was
// fixed goes to every plugin.
func TestDeadletterReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	const match = "7"
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	r := &faultRun{srv: srv, rdb: rdb, pub: publish.NewPublisher(rdb, channel, orderPrefix), gen: publish.NewGenerator(801)}
	cfgPath := writeConfig(t, srv, "u8", liarBlock(t, "", map[string]string{"mode": "error", "match": match}))
	r.h = startHost(t, rdb, cfgPath)
	r.publish(t, 300)
	// A bad order: its id is published before its hash is stored.
	bad := r.gen.Next()
	if err := rdb.Publish(ctx, channel, bad.ID).Err(); err != nil {
		t.Fatal(err)
	}
	dead, _ := matchingIDs(r.published, match)
	waitApplied(t, rdb, ids(r.published), bundled, time.Minute)
	waitFor(t, time.Minute, "liar to write or dead-letter every order, and the bad order's dead letter", func() bool {
		n, _ := rdb.XLen(ctx, dlStream).Result()
		return int(n) == len(dead)+1
	})
	r.finish(t)

	letters := entriesBy(t, rdb)
	if got := letters[""]; len(got) != 1 || got[0].OrderID != bad.ID {
		t.Fatalf("dead letters for bad orders: %+v, want one for %s", got, bad.ID)
	}
	var deadIDs []string
	for _, e := range letters[liarName] {
		deadIDs = append(deadIDs, e.OrderID)
	}
	sort.Strings(deadIDs)
	if want := sortedKeys(dead); strings.Join(deadIDs, ",") != strings.Join(want, ",") {
		t.Fatalf("liar's dead letters are for %v, want %v", deadIDs, want)
	}
	// A plugin the config no longer has left a dead letter too.
	retired := r.published[0].ID
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: dlStream, Values: []string{
		"order_id", retired, "channel", channel, "plugin", "retired", "reason", "plugin error: retired for good",
		"attempts", "1", "time_ms", strconv.FormatInt(time.Now().UnixMilli(), 10),
	}}).Err(); err != nil {
		t.Fatal(err)
	}
	total := len(dead) + 2

	// list: the table, its filters and -json.
	res := mustRun(t, 0, "deadletter", "list", "-config", cfgPath, "-n", "0")
	wantLine(t, res.stdout, fmt.Sprintf("%d entries", total))
	if rows := strings.Count(res.stdout, "\n") - 2; rows != total {
		t.Errorf("deadletter list shows %d rows, want %d:\n%s", rows, total, res.stdout)
	}
	if !regexp.MustCompile(`(?m)^\d+-\d+ +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ +` + regexp.QuoteMeta(bad.ID) + ` +- +1 +order hash `).MatchString(res.stdout) {
		t.Errorf("deadletter list has no row for the bad order %s with plugin -:\n%s", bad.ID, res.stdout)
	}
	res = mustRun(t, 0, "deadletter", "list", "-config", cfgPath, "-n", "5")
	wantLine(t, res.stdout, "5 entries shown; more match (raise -n, or -n 0 for all)")
	res = mustRun(t, 0, "deadletter", "list", "-config", cfgPath, "-n", "0", "-plugin", liarName, "-json")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != len(dead) {
		t.Errorf("deadletter list -plugin liar -json printed %d lines, want %d", len(lines), len(dead))
	}
	for _, l := range lines {
		var e struct {
			Entry    string `json:"entry"`
			OrderID  string `json:"order_id"`
			Plugin   string `json:"plugin"`
			Reason   string `json:"reason"`
			Time     string `json:"time"`
			Attempts int    `json:"attempts"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if e.Plugin != liarName || !dead[e.OrderID] || e.Attempts != 3 || e.Entry == "" || !strings.Contains(e.Reason, "liar refuses order "+e.OrderID) {
			t.Errorf("deadletter list -json: %s", l)
		}
		if _, err := time.Parse(time.RFC3339, e.Time); err != nil {
			t.Errorf("deadletter list -json: time %q: %v", e.Time, err)
		}
	}
	res = mustRun(t, 0, "deadletter", "list", "-config", cfgPath, "-plugin", "-", "-json")
	if !strings.Contains(res.stdout, `"order_id":"`+bad.ID+`"`) || strings.Count(res.stdout, "\n") != 1 {
		t.Errorf("deadletter list -plugin - -json: %s", res.stdout)
	}

	mustRun(t, 2, "deadletter", "replay", "-config", cfgPath)

	// Replayed while liar still fails it: dead-lettered anew, the old
	// entry gone with it.
	x := deadIDs[0]
	old := letters[liarName][0]
	res = mustRun(t, 0, "deadletter", "replay", "-config", cfgPath, "-id", x)
	wantLine(t, res.stdout, "replayed 1 of 1 entries: 0 applied, 0 already done, 1 dead-lettered again")
	again := entriesBy(t, rdb)[liarName]
	if len(again) != len(dead) || again[len(again)-1].OrderID != x || again[len(again)-1].StreamID == old.StreamID || again[len(again)-1].Attempts != 3 {
		t.Errorf("after a failed replay of %s, liar's dead letters end with %+v, want a new entry for it, and still %d", x, again[len(again)-1], len(dead))
	}
	for _, e := range again {
		if e.StreamID == old.StreamID {
			t.Errorf("the replayed entry %s is still in the stream", old.StreamID)
		}
	}

	// Fixed: liar records every order now.
	okCfg := replaceInConfig(t, cfgPath, `mode = "error"`, `mode = "ok"`)
	res = mustRun(t, 0, "deadletter", "replay", "-config", okCfg, "-id", x, "-plugin", liarName)
	wantLine(t, res.stdout, "replayed 1 of 1 entries: 1 applied, 0 already done, 0 dead-lettered again")
	if in, _ := rdb.SIsMember(ctx, liarOrders, x).Result(); !in {
		t.Errorf("replayed order %s is not in %s", x, liarOrders)
	}
	if n := len(entriesBy(t, rdb)[liarName]); n != len(dead)-1 {
		t.Errorf("%d dead letters for liar after replaying one, want %d", n, len(dead)-1)
	}

	// The bad order's hash is stored at last: every plugin counts it.
	if err := rdb.HSet(ctx, orderPrefix+bad.ID, bad.Fields()...).Err(); err != nil {
		t.Fatal(err)
	}
	res = mustRun(t, 0, "deadletter", "replay", "-config", okCfg, "-plugin", "-")
	wantLine(t, res.stdout, "replayed 1 of 1 entries: 4 applied, 0 already done, 0 dead-lettered again")
	r.published = append(r.published, bad)

	res = mustRun(t, 0, "deadletter", "replay", "-config", okCfg, "-all")
	wantLine(t, res.stdout, fmt.Sprintf("replayed %d of %d entries: %d applied, 0 already done, 0 dead-lettered again, 1 skipped (left in the stream)",
		len(dead)-1, len(dead), len(dead)-1))
	if !strings.Contains(res.stdout, `(order `+retired+`, plugin retired): plugin "retired" is not in the config`) {
		t.Errorf("replay -all does not report the retired plugin's entry:\n%s", res.stdout)
	}
	left := entriesBy(t, rdb)
	if len(left) != 1 || len(left["retired"]) != 1 {
		t.Errorf("dead letters left: %+v, want only the retired plugin's", left)
	}
	r.checkLiar(t, allIDs(r.published))
	r.checkBundled(t)
	if t.Failed() {
		t.FailNow()
	}

	// A stale duplicate of an entry already replayed: the done marker makes
	// it a no-op that still deletes the entry.
	before := dump(t, rdb, "")
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: dlStream, Values: old.Fields()}).Err(); err != nil {
		t.Fatal(err)
	}
	res = mustRun(t, 0, "deadletter", "replay", "-config", okCfg, "-plugin", liarName)
	wantLine(t, res.stdout, "replayed 1 of 1 entries: 0 applied, 1 already done, 0 dead-lettered again")
	res = mustRun(t, 0, "deadletter", "replay", "-config", okCfg, "-plugin", liarName)
	wantLine(t, res.stdout, "no dead letters match: nothing to replay")
	diffState(t, dump(t, rdb, ""), before)
}

// entriesBy returns the dead letters by plugin ("" for bad orders), oldest
// first.
func entriesBy(t *testing.T, rdb *redis.Client) map[string][]deadletter.Entry {
	t.Helper()
	all, err := deadletter.List(context.Background(), rdb, dlStream, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]deadletter.Entry{}
	for _, e := range all {
		out[e.Plugin] = append(out[e.Plugin], e)
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
