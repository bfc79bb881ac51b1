package e2e

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/publish"
)

// checkStored checks that every order of os is stored in its hash exactly
// as published.
func checkStored(t *testing.T, rdb redis.Cmdable, os []publish.Order) {
	t.Helper()
	pipe := rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(os))
	for i, o := range os {
		cmds[i] = pipe.HGetAll(context.Background(), orderPrefix+o.ID)
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, o := range os {
		if got := cmds[i].Val(); !reflect.DeepEqual(got, o.Hash()) {
			t.Fatalf("%s%s = %v, want %v", orderPrefix, o.ID, got, o.Hash())
		}
	}
}

// TestClusterCommands: publish, report and deadletter list against a Redis
// Cluster of 3 masters, each checked against exact state or output (report's
// against the same data on a single node).
func TestClusterCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	cc := cl.Client()
	ctx := context.Background()
	single := redistest.Start(t)
	placeholder := &redistest.Server{Addr: "cluster.invalid:1"}
	pubsubCfg := onCluster(t, writeConfig(t, placeholder, "u8", ""), placeholder, cl)

	// A sharded stream: each order's hash stored, its id in the shard its
	// id hashes to, once, over shards on more than one master.
	t.Run("publish to stream shards", func(t *testing.T) {
		path := replaceInConfig(t, pubsubCfg, fmt.Sprintf("source \"pubsub\" { channels = [%q] }", channel),
			fmt.Sprintf("source \"stream\" {\n  stream = %q\n  shards = 3\n}", channel))
		res := mustRunOK(t, "publish", "-config", path, "-n", "400", "-seed", "31")
		if want := "published 400 orders on " + channel; len(res.stdout) < len(want) || res.stdout[:len(want)] != want {
			t.Errorf("publish said %q, want it to start %q", res.stdout, want)
		}
		published := generated(31, 400)
		checkStored(t, cc, published)
		stream := config.Stream{Key: channel, Shards: 3}
		want := map[string][]string{}
		for _, o := range published {
			want[stream.KeyFor(o.ID)] = append(want[stream.KeyFor(o.ID)], o.ID)
		}
		got := map[string][]string{}
		for _, k := range stream.Keys() {
			msgs, err := cc.XRange(ctx, k, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				got[k] = append(got[k], m.Values[publish.StreamIDField].(string))
			}
		}
		if !reflect.DeepEqual(got, want) || len(got) != 3 {
			t.Errorf("entries per shard (%d shards used) differ from the shards the ids hash to", len(got))
		}
	})

	// Sharded Pub/Sub: SPUBLISH on the channel's master; the hashes are
	// stored (no subscriber: nothing else to see).
	t.Run("publish to a sharded channel", func(t *testing.T) {
		path := replaceInConfig(t, pubsubCfg, fmt.Sprintf("source \"pubsub\" { channels = [%q] }", channel),
			fmt.Sprintf("source \"pubsub\" {\n  channels = [%q]\n  sharded = true\n}", channel))
		ps := cc.SSubscribe(ctx, channel)
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		mustRunOK(t, "publish", "-config", path, "-n", "50", "-seed", "32")
		published := generated(32, 50)
		checkStored(t, cc, published)
		for _, o := range published {
			msg, err := ps.ReceiveMessage(ctx)
			if err != nil || msg.Payload != o.ID {
				t.Fatalf("sharded channel carried %v, %v; want %s", msg, err, o.ID)
			}
		}
	})

	// report reads the views across slots and scans every master: its
	// output on the cluster is the one on a single node with the same data.
	t.Run("report", func(t *testing.T) {
		orders := generated(33, 300)
		replayTutorial(t, cc, orders, "u8")
		replayTutorial(t, single.Client(), orders, "u8")
		onNode := mustRunOK(t, "report", "-config", writeConfig(t, single, "u8", ""))
		onCluster := mustRunOK(t, "report", "-config", pubsubCfg)
		if onCluster.stdout != onNode.stdout || len(onNode.stdout) < 1000 {
			t.Errorf("report on the cluster:\n%s\nwant, as on a single node:\n%s", onCluster.stdout, onNode.stdout)
		}
	})

	// deadletter list reads the dead-letter stream on its node.
	t.Run("deadletter list", func(t *testing.T) {
		entries := []deadletter.Entry{
			{OrderID: "2020-0000007", Channel: channel, Plugin: "events-summary", Reason: "plugin error: no", Attempts: 3},
			{OrderID: "ghost", Channel: channel, Reason: "order purchase_order_details:ghost does not exist", Attempts: 1},
		}
		for i, e := range entries {
			id := fmt.Sprintf("1764000000%03d-0", i)
			fields := append(e.Fields(), "time_ms", strconv.FormatInt(1764000000000+int64(i), 10))
			if err := cc.XAdd(ctx, &redis.XAddArgs{Stream: deadLetterStream, ID: id, Values: fields}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		res := mustRunOK(t, "deadletter", "list", "-config", pubsubCfg)
		want := "" +
			"ENTRY            TIME                  ORDER         PLUGIN          ATTEMPTS  REASON\n" +
			"1764000000000-0  2025-11-24T16:00:00Z  2020-0000007  events-summary  3         plugin error: no\n" +
			"1764000000001-0  2025-11-24T16:00:00Z  ghost         -               1         order purchase_order_details:ghost does not exist\n" +
			"2 entries\n"
		if res.stdout != want {
			t.Errorf("deadletter list on the cluster:\n%s\nwant:\n%s", res.stdout, want)
		}
	})
}
