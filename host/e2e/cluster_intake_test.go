package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/publish"
)

// TestClusterShardedStream: `eventhost run` on a 3-master cluster reading a
// stream spread over 3 keys (so over the masters), fed by `eventhost
// publish`; two hosts, one killed with entries pending. Every order is
// counted exactly once (the cluster's keys equal the tutorial's), every
// shard's entries are acknowledged.
func TestClusterShardedStream(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	cc := cl.Client()
	ctx := context.Background()
	path := replaceInConfig(t, clusterConfig(t, cl, true, ""), "claim_idle", "shards         = 3\n  claim_idle")
	stream := config.Stream{Key: channel, Shards: 3}
	masters := map[string]bool{}
	for _, k := range stream.Keys() {
		masters[masterAddr(t, ctx, cc, k)] = true
	}
	if len(masters) < 2 {
		t.Fatalf("the 3 shards are all on %v: want them on several masters", masters)
	}
	a := startHost(t, nil, path)
	b := startHost(t, nil, path)

	first := generated(91, 2000)
	mustRunOK(t, "publish", "-config", path, "-n", "2000", "-seed", "91", "-rate", "4000")
	waitApplied(t, cc, ids(first[:300]), bundled, time.Minute)
	a.kill() // what it read and did not apply stays pending: B claims it
	second := generated(92, 500)
	mustRunOK(t, "publish", "-config", path, "-n", "500", "-seed", "92")
	all := append(first, second...)
	waitApplied(t, cc, ids(all), bundled, 2*time.Minute)
	if code := b.stop(t); code != 0 {
		t.Errorf("host B exited %d after SIGTERM, want 0", code)
	}

	total := 0
	for _, k := range stream.Keys() {
		p, err := cc.XPending(ctx, k, streamGroup).Result()
		if err != nil {
			t.Fatal(err)
		}
		if p.Count != 0 {
			t.Errorf("%d entries of %s still pending (%v), want 0", p.Count, k, p.Consumers)
		}
		n, err := cc.XLen(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		total += int(n)
		// The shards are the producer's data: out of the comparison.
		if err := cc.Del(ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if total != len(all) {
		t.Errorf("%d entries over the shards, want %d", total, len(all))
	}
	checkClusterState(t, ctx, cc, all, false)
}

// TestClusterShardedPubSub: `eventhost run` on a 3-master cluster with a
// sharded Pub/Sub source; `eventhost publish` announces with SPUBLISH. The
// host's subscriptions are cut on every node while orders flow: it
// subscribes again, catches up (on every master), and counts every order
// exactly once.
func TestClusterShardedPubSub(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	cc := cl.Client()
	ctx := context.Background()
	path := replaceInConfig(t, clusterConfig(t, cl, false, ""),
		fmt.Sprintf("source \"pubsub\" { channels = [%q] }", channel),
		fmt.Sprintf("source \"pubsub\" {\n  channels = [%q]\n  sharded  = true\n}", channel))
	h := startHost(t, nil, path)

	orders := generated(93, 2000)
	done := make(chan cmdResult, 1)
	go func() {
		done <- runEventhost(t, time.Minute, nil, "publish", "-config", path, "-n", "2000", "-seed", "93", "-rate", "4000")
	}()
	waitApplied(t, cc, ids(orders[:200]), bundled, time.Minute)
	killed := 0
	for _, n := range cl.Nodes {
		k, err := n.Client().Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Int()
		if err != nil {
			t.Fatal(err)
		}
		killed += k
	}
	if killed != 1 {
		t.Errorf("cut %d subscriptions, want the host's one", killed)
	}
	if res := <-done; res.code != 0 {
		t.Fatalf("eventhost publish exited %d\n%s", res.code, res.stderr)
	}
	waitApplied(t, cc, ids(orders), bundled, 2*time.Minute)
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(h.log.String(), "resubscribed after reconnect") {
		t.Errorf("the host did not log its resubscription")
	}
	checkClusterState(t, ctx, cc, orders, true)
}

// TestClusterBackfillAndReplay: on a 3-master cluster `eventhost backfill`
// counts every stored order once (a second run counts none), and `eventhost
// deadletter replay` applies dead-lettered pairs once and deletes their
// entries; the keys end as the tutorial's.
func TestClusterBackfillAndReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	cc := cl.Client()
	ctx := context.Background()
	path := clusterConfig(t, cl, false, "")
	stored, err := publish.NewPublisher(cc, channel, orderPrefix).PublishMany(ctx, publish.NewGenerator(94), 600, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range bundled {
		res := mustRun(t, 0, "backfill", "-config", path, "-plugin", p)
		if want := "backfill " + p + ": processed 600, already done 0, dead-lettered 0 (600 to do of 600 orders stored), took "; !strings.HasPrefix(res.stdout, want) {
			t.Errorf("backfill %s: summary %q, want it to start %q", p, res.stdout, want)
		}
		res = mustRun(t, 0, "backfill", "-config", path, "-plugin", p)
		if want := "processed 0, already done 0, dead-lettered 0 (0 to do of 600 orders stored)"; !strings.Contains(res.stdout, want) {
			t.Errorf("backfill %s again: summary %q, want it to say %q", p, res.stdout, want)
		}
	}

	// An order every plugin dead-lettered (its hash was stored late, say):
	// replayed, each pair lands once and its entry goes.
	late := publish.NewGenerator(95).Next()
	if err := cc.HSet(ctx, orderPrefix+late.ID, late.Fields()...).Err(); err != nil {
		t.Fatal(err)
	}
	for _, p := range bundled {
		if err := cc.XAdd(ctx, &redis.XAddArgs{Stream: deadLetterStream, Values: []string{
			"order_id", late.ID, "channel", channel, "plugin", p, "reason", "plugin error: not yet", "attempts", "3",
			"time_ms", fmt.Sprint(time.Now().UnixMilli()),
		}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	res := mustRun(t, 0, "deadletter", "replay", "-config", path, "-all")
	wantLine(t, res.stdout, "replayed 3 of 3 entries: 3 applied, 0 already done, 0 dead-lettered again")
	res = mustRun(t, 0, "deadletter", "replay", "-config", path, "-all")
	wantLine(t, res.stdout, "no dead letters match: nothing to replay")
	if n, err := cc.XLen(ctx, deadLetterStream).Result(); err != nil || n != 0 {
		t.Errorf("dead-letter stream holds %d entries (%v), want 0", n, err)
	}
	if err := cc.Del(ctx, deadLetterStream).Err(); err != nil {
		t.Fatal(err)
	}
	all := append(stored, late)
	got := map[string]bool{}
	for _, o := range all {
		h, err := cc.HGetAll(ctx, orderPrefix+o.ID).Result()
		if err != nil {
			t.Fatal(err)
		}
		for f := range h {
			if strings.HasPrefix(f, "eventhost:history:") {
				// Backfill registered the plugins and took the stored
				// orders as their history before counting them.
				got[o.ID] = true
				cc.HDel(ctx, orderPrefix+o.ID, f)
			}
		}
	}
	if len(got) != len(stored) {
		t.Errorf("%d orders carry history markers, want the %d stored before the backfill", len(got), len(stored))
	}
	checkClusterState(t, ctx, cc, all, true)
}
