package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/publish"
)

// publishCLI runs `eventhost publish` with args against the config at path
// and fails the test unless it exits 0.
func publishCLI(t *testing.T, path string, args ...string) {
	t.Helper()
	res := runEventhost(t, 60*time.Second, nil, append([]string{"publish", "-config", path}, args...)...)
	if res.code != 0 {
		t.Fatalf("eventhost publish %v exited %d\nstdout:\n%s\nstderr:\n%s", args, res.code, res.stdout, res.stderr)
	}
}

// TestShardedStreamIntake: a stream source spread over three stream keys.
// `eventhost publish` appends each order to the shard its id hashes to; two
// hosts share the shards' groups while one of them is killed with entries
// pending; every order is counted exactly once and every entry of every
// shard is acknowledged.
func TestShardedStreamIntake(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	path := replaceInConfig(t, streamConfig(t, srv, ""), "claim_idle", "shards = 3\n  claim_idle")
	stream := config.Stream{Key: channel, Shards: 3}
	a := startHost(t, rdb, path)
	b := startHost(t, rdb, path)

	first := generated(77, 1500)
	publishCLI(t, path, "-n", "1500", "-seed", "77", "-rate", "3000")
	waitApplied(t, rdb, ids(first[:300]), bundled, 60*time.Second)
	a.kill() // with what it read and did not apply pending: B claims it
	waitApplied(t, rdb, ids(first), bundled, 60*time.Second)
	second := generated(78, 500)
	publishCLI(t, path, "-n", "500", "-seed", "78")
	all := append(first, second...)
	waitApplied(t, rdb, ids(all), bundled, 60*time.Second)
	if code := b.stop(t); code != 0 {
		t.Errorf("host B exited %d after SIGTERM, want 0", code)
	}

	// Each order's entry is in the shard KeyFor names, once; every shard
	// has some, and none is pending.
	perShard := map[string]int{}
	for _, k := range stream.Keys() {
		msgs, err := rdb.XRange(ctx, k, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			id, _ := m.Values[publish.StreamIDField].(string)
			if stream.KeyFor(id) != k {
				t.Errorf("order %s is in %s, want %s", id, k, stream.KeyFor(id))
			}
		}
		perShard[k] = len(msgs)
		p, err := rdb.XPending(ctx, k, streamGroup).Result()
		if err != nil {
			t.Fatal(err)
		}
		if p.Count != 0 {
			t.Errorf("%d entries of %s still pending (%v), want 0", p.Count, k, p.Consumers)
		}
	}
	total := 0
	for _, n := range perShard {
		total += n
	}
	if total != len(all) || len(perShard) != 3 || perShard[stream.Keys()[0]] == 0 {
		t.Errorf("entries per shard %v, want %d in all over 3 shards", perShard, len(all))
	}
	if n, _ := rdb.Exists(ctx, channel).Result(); n != 0 {
		t.Errorf("the unsharded stream %s exists: publish wrote to it", channel)
	}
	checkNoDeadLetters(t, rdb)
	checkOrderHashes(t, rdb, all, bundled)
	checkTutorialStateAnyOrder(t, rdb, all)
}

// TestShardedPubSubIntake: a sharded Pub/Sub source (SSUBSCRIBE) on one
// node. `eventhost publish` announces with SPUBLISH; after the host's
// subscription is cut while orders flow, the catch-up that follows the
// resubscription finds the orders announced meanwhile, and every order is
// counted exactly once.
func TestShardedPubSubIntake(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	path := replaceInConfig(t, writeConfig(t, srv, "u8", ""),
		fmt.Sprintf("source \"pubsub\" { channels = [%q] }", channel),
		fmt.Sprintf("source \"pubsub\" {\n  channels = [%q]\n  sharded  = true\n}", channel))
	h := startHost(t, rdb, path)

	orders := generated(79, 2000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishCLI(t, path, "-n", "2000", "-seed", "79", "-rate", "4000")
	}()
	waitApplied(t, rdb, ids(orders[:200]), bundled, 60*time.Second)
	killed, err := rdb.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Int()
	if err != nil || killed != 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub: %d, %v; want the host's one subscription", killed, err)
	}
	<-done
	waitApplied(t, rdb, ids(orders), bundled, 60*time.Second)
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(h.log.String(), "resubscribed after reconnect") {
		t.Errorf("the host did not log its resubscription:\n%s", tail(h.log.String(), 40))
	}
	checkNoDeadLetters(t, rdb)
	checkOrderHashes(t, rdb, orders, bundled)
	checkTutorialStateAnyOrder(t, rdb, orders)
}
