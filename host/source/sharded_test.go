package source_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/intake"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/source"
)

// subscriber runs a PubSub source and records what it was told.
type subscriber struct {
	out     *intake.Queue
	mu      sync.Mutex
	calls   []bool // OnSubscribed's reconnect arguments, in order
	metrics *metrics.Metrics
}

func startPubSub(t *testing.T, rdb redis.UniversalClient, channels []string, sharded bool) *subscriber {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s := &subscriber{out: intake.NewQueue(1000), metrics: metrics.New()}
	src := source.NewPubSub(rdb, channels, hclog.NewNullLogger(), s.metrics)
	src.Sharded = sharded
	src.OnSubscribed = func(reconnect bool) {
		s.mu.Lock()
		s.calls = append(s.calls, reconnect)
		s.mu.Unlock()
	}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, s.out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitFor(t, "subscribed", func() bool { return len(s.onSubscribed()) == 1 })
	return s
}

func (s *subscriber) onSubscribed() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// receive reads n refs and returns them as "channel/id", sorted.
func (s *subscriber) receive(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	for range n {
		r, ok := next(s.out, 10*time.Second)
		if !ok {
			t.Fatalf("received %v, then nothing: want %d ids", got, n)
		}
		got = append(got, r.Channel+"/"+r.ID)
	}
	if r, ok := next(s.out, 50*time.Millisecond); ok {
		t.Fatalf("received %v and then %+v too: want %d ids", got, r, n)
	}
	slices.Sort(got)
	return got
}

// announce publishes id on every channel: SPUBLISH when sharded, and
// returns what a subscriber should receive, sorted.
func announce(t *testing.T, rdb redis.UniversalClient, channels []string, id string, sharded bool) []string {
	t.Helper()
	want, err := publishAll(t.Context(), rdb, channels, id, sharded)
	if err != nil {
		t.Fatal(err)
	}
	return want
}

// publishAll is announce, returning the first error instead of failing.
func publishAll(ctx context.Context, rdb redis.UniversalClient, channels []string, id string, sharded bool) ([]string, error) {
	var want []string
	for _, ch := range channels {
		var err error
		if sharded {
			err = rdb.SPublish(ctx, ch, id).Err()
		} else {
			err = rdb.Publish(ctx, ch, id).Err()
		}
		if err != nil {
			return nil, err
		}
		want = append(want, ch+"/"+id)
	}
	slices.Sort(want)
	return want, nil
}

// killSubscribers closes every Pub/Sub connection of nodes, as a network
// fault would.
func killSubscribers(t *testing.T, nodes []*redis.Client) {
	t.Helper()
	for _, n := range nodes {
		if err := n.Do(t.Context(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// A source receives every id published on its channels, subscribes again
// by itself after its connections were closed (OnSubscribed(true), which
// triggers the catch-up, once all channels are back), and receives again.
func checkPubSub(t *testing.T, rdb redis.UniversalClient, nodes []*redis.Client, channels []string, sharded bool) {
	s := startPubSub(t, rdb, channels, sharded)
	if want, got := announce(t, rdb, channels, "1", sharded), s.receive(t, len(channels)); !reflect.DeepEqual(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
	killSubscribers(t, nodes)
	// Sharded, each channel's subscription comes back on its own and
	// reports it: one call per channel.
	reconnects := 1
	if sharded {
		reconnects = len(channels)
	}
	waitFor(t, "resubscribed", func() bool { return len(s.onSubscribed()) == 1+reconnects })
	want := []bool{false}
	for range reconnects {
		want = append(want, true)
	}
	if got := s.onSubscribed(); !reflect.DeepEqual(got, want) {
		t.Errorf("OnSubscribed called with %v, want %v", got, want)
	}
	if got := value(s.metrics.Reconnects); got != float64(reconnects) {
		t.Errorf("reconnects metric = %v, want %d", got, reconnects)
	}
	if want, got := announce(t, rdb, channels, "2", sharded), s.receive(t, len(channels)); !reflect.DeepEqual(got, want) {
		t.Errorf("after reconnecting received %v, want %v", got, want)
	}
}

// Redis 7 has sharded Pub/Sub on a single node too.
func TestShardedPubSubSingleNode(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	t.Parallel()
	rdb := redistest.Start(t).Client()
	checkPubSub(t, rdb, []*redis.Client{rdb}, []string{"purchase_orders", "refunds"}, true)
}

// On a cluster, plain Pub/Sub works as on one node (PUBLISH reaches every
// node, whichever the subscriber is on), and sharded Pub/Sub subscribes to
// each channel on the master that owns its slot.
func TestPubSubOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	t.Parallel()
	cluster := redistest.StartCluster(t, 3)
	rdb := cluster.Client()
	var nodes []*redis.Client
	for _, n := range cluster.Nodes {
		nodes = append(nodes, n.Client())
	}
	// Channels whose slots are on three different masters.
	channels := channelsOnEveryMaster(t, rdb, 3)
	t.Run("plain", func(t *testing.T) { checkPubSub(t, rdb, nodes, channels, false) })
	t.Run("sharded", func(t *testing.T) { checkPubSub(t, rdb, nodes, channels, true) })
	// A slot that moves takes its sharded channels along: Redis drops the
	// subscription (SUNSUBSCRIBE) and the source subscribes again on the new
	// owner, reporting a reconnect so that a catch-up runs.
	t.Run("slot moved", func(t *testing.T) {
		s := startPubSub(t, rdb, channels, true)
		slot, err := rdb.ClusterKeySlot(t.Context(), channels[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		moveSlot(t, rdb, nodes, slot)
		waitFor(t, "resubscribed", func() bool { return len(s.onSubscribed()) == 2 })
		if want, got := announce(t, rdb, channels, "3", true), s.receive(t, len(channels)); !reflect.DeepEqual(got, want) {
			t.Errorf("after the slot moved received %v, want %v", got, want)
		}
	})
	// A master that dies takes its channels' subscriptions along; once its
	// replica has taken over, the source subscribes there, plain or
	// sharded. Last: the cluster keeps one master fewer.
	t.Run("master failover", func(t *testing.T) {
		plain := startPubSub(t, rdb, channels, false)
		sharded := startPubSub(t, rdb, channels, true)
		dead := masterOf(t, rdb, mustSlot(t, rdb, channels[1]))
		// A replica takes over only once it has synced with its master.
		waitLong(t, "the master's replica in sync", func() bool {
			for _, n := range nodes {
				if n.Options().Addr == dead {
					info, _ := n.Info(t.Context(), "replication").Result()
					return strings.Contains(info, "state=online")
				}
			}
			return false
		})
		for _, n := range cluster.Nodes {
			if n.Addr == dead {
				n.Kill()
			}
		}
		// Sharded: the dead master's channel only; plain: the one
		// subscription, wherever it was (it reports a reconnect only
		// if it was on the dead master).
		waitLong(t, "the sharded source resubscribed after its channel's master died", func() bool {
			return len(sharded.onSubscribed()) == 2
		})
		waitFor(t, "a new master for the slot", func() bool {
			rdb.ReloadState(t.Context())
			return masterOf(t, rdb, mustSlot(t, rdb, channels[1])) != dead
		})
		for _, sub := range []struct {
			s       *subscriber
			sharded bool
		}{{sharded, true}, {plain, false}} {
			var want []string
			// The cluster may still refuse a publish on the dead
			// master's slot for a moment after the failover.
			for want == nil {
				want = announceRetry(t, rdb, channels, "4", sub.sharded)
			}
			if got := sub.s.receive(t, len(channels)); !reflect.DeepEqual(got, want) {
				t.Errorf("sharded=%v: after the failover received %v, want %v", sub.sharded, got, want)
			}
		}
	})
}

// channelsOnEveryMaster returns n channel names whose slots belong to n
// different masters.
func channelsOnEveryMaster(t *testing.T, rdb *redis.ClusterClient, n int) []string {
	t.Helper()
	owners := map[string]bool{}
	var out []string
	for i := 0; len(out) < n && i < 1000; i++ {
		ch := fmt.Sprintf("orders-%d", i)
		slot, err := rdb.ClusterKeySlot(t.Context(), ch).Result()
		if err != nil {
			t.Fatal(err)
		}
		owner := masterOf(t, rdb, slot)
		if !owners[owner] {
			owners[owner] = true
			out = append(out, ch)
		}
	}
	if len(out) < n {
		t.Fatalf("found channels on %d masters, want %d", len(out), n)
	}
	return out
}

func masterOf(t *testing.T, rdb *redis.ClusterClient, slot int64) string {
	t.Helper()
	slots, err := rdb.ClusterSlots(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) {
			return s.Nodes[0].Addr
		}
	}
	t.Fatalf("no master owns slot %d", slot)
	return ""
}

// moveSlot moves slot (holding no keys) from its master to another one, as
// a resharding does, and returns once every master agrees.
func moveSlot(t *testing.T, rdb *redis.ClusterClient, nodes []*redis.Client, slot int64) {
	t.Helper()
	ctx := t.Context()
	from := masterOf(t, rdb, slot)
	var src, dst *redis.Client
	var masters []*redis.Client
	for _, n := range nodes {
		role, err := n.Do(ctx, "ROLE").Slice()
		if err != nil {
			t.Fatal(err)
		}
		if role[0] != "master" {
			continue
		}
		masters = append(masters, n)
		switch {
		case n.Options().Addr == from:
			src = n
		case dst == nil:
			dst = n
		}
	}
	srcID, dstID := src.ClusterMyID(ctx).Val(), dst.ClusterMyID(ctx).Val()
	for _, step := range []struct {
		node *redis.Client
		args []any
	}{
		{dst, []any{"CLUSTER", "SETSLOT", slot, "IMPORTING", srcID}},
		{src, []any{"CLUSTER", "SETSLOT", slot, "MIGRATING", dstID}},
		{dst, []any{"CLUSTER", "SETSLOT", slot, "NODE", dstID}},
		{src, []any{"CLUSTER", "SETSLOT", slot, "NODE", dstID}},
	} {
		if err := step.node.Do(ctx, step.args...).Err(); err != nil {
			t.Fatalf("%v: %v", step.args, err)
		}
	}
	for _, m := range masters {
		if err := m.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the slot's new owner", func() bool {
		rdb.ReloadState(ctx)
		return masterOf(t, rdb, slot) == dst.Options().Addr
	})
}

func mustSlot(t *testing.T, rdb *redis.ClusterClient, key string) int64 {
	t.Helper()
	slot, err := rdb.ClusterKeySlot(t.Context(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return slot
}

// announceRetry is announce, giving up (nil) on an error rather than
// failing the test, so the caller can try again.
func announceRetry(t *testing.T, rdb redis.UniversalClient, channels []string, id string, sharded bool) []string {
	t.Helper()
	want, err := publishAll(t.Context(), rdb, channels, id, sharded)
	if err != nil {
		time.Sleep(50 * time.Millisecond)
		return nil
	}
	return want
}

// waitLong is waitFor for what a cluster takes seconds to do (a replica's
// first sync, a failover): up to 60s.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 60s waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
