package source_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/intake"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/redisconn"
	"github.com/eventhost/eventhost/host/source"
)

const group = "eventhost"

// added is one entry the test appended: its key, entry id and order id.
type added struct{ stream, entry, id string }

func (a added) String() string { return a.stream + "/" + a.entry + "/" + a.id }

// addOrders appends an entry per id to the shard KeyFor picks.
func addOrders(t *testing.T, rdb redis.UniversalClient, cfg config.Stream, ids ...string) []added {
	t.Helper()
	var out []added
	for _, id := range ids {
		k := cfg.KeyFor(id)
		e, err := rdb.XAdd(t.Context(), &redis.XAddArgs{Stream: k, Values: []any{source.StreamIDField, id}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, added{k, e, id})
	}
	return out
}

// runStream runs a stream source until the returned stop is called.
func runStream(t *testing.T, rdb redis.UniversalClient, cfg config.Stream, out *intake.Queue) (stop func(), m *metrics.Metrics) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	m = metrics.New()
	src := source.NewStream(rdb, cfg, hclog.NewNullLogger(), m)
	src.Count = 50
	ready := make(chan struct{})
	src.OnReady = func() { close(ready) } // a second call would panic
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("stream source not ready within 10s")
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(stop)
	return stop, m
}

// take reads n refs and returns them as added, sorted, checking the source
// named the logical stream as the channel.
func take(t *testing.T, cfg config.Stream, out *intake.Queue, n int) []added {
	t.Helper()
	var got []added
	for range n {
		r, ok := next(out, 10*time.Second)
		if !ok {
			t.Fatalf("received %v, then nothing: want %d entries", got, n)
		}
		if r.Channel != cfg.Key || r.Poison != "" {
			t.Errorf("ref %+v: want channel %s and no poison", r, cfg.Key)
		}
		got = append(got, added{r.Stream, r.StreamID, r.ID})
	}
	sortAdded(got)
	return got
}

func sortAdded(a []added) {
	slices.SortFunc(a, func(x, y added) int {
		switch {
		case x.String() < y.String():
			return -1
		case x.String() > y.String():
			return 1
		}
		return 0
	})
}

// ack acknowledges entries on their own keys, as the applier does.
func ack(t *testing.T, rdb redis.UniversalClient, entries []added) {
	t.Helper()
	for _, e := range entries {
		if n, err := rdb.XAck(t.Context(), e.stream, group, e.entry).Result(); err != nil || n != 1 {
			t.Fatalf("xack %v: %d, %v", e, n, err)
		}
	}
}

// pendingPerKey returns each key's pending entries in the group.
func pendingPerKey(t *testing.T, rdb redis.UniversalClient, cfg config.Stream) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, k := range cfg.Keys() {
		p, err := rdb.XPendingExt(t.Context(), &redis.XPendingExtArgs{Stream: k, Group: group, Start: "-", End: "+", Count: 1000}).Result()
		if err != nil {
			t.Fatalf("xpending %s: %v", k, err)
		}
		for _, e := range p {
			out[k] = append(out[k], e.ID+"@"+e.Consumer)
		}
	}
	return out
}

func shardedConfig(name, consumer string) config.Stream {
	return config.Stream{Key: name, Shards: 3, Group: group, Consumer: consumer, ClaimIdle: 300 * time.Millisecond,
		MaxDeliveries: 5, Start: "0"}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// checkShardedStream runs the sharded stream source's cases against rdb,
// with nodes the nodes whose clients a network fault cuts.
func checkShardedStream(t *testing.T, rdb redis.UniversalClient, nodes []*redis.Client) {
	// Every entry of every shard is handed on once, naming its own key;
	// acknowledged on that key, no shard keeps one pending.
	t.Run("reads every shard", func(t *testing.T) {
		cfg := shardedConfig("reads", "c1")
		want := addOrders(t, rdb, cfg, ids("a", 60)...)
		sortAdded(want)
		out := intake.NewQueue(1000)
		_, m := runStream(t, rdb, cfg, out)
		got := take(t, cfg, out, len(want))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("handed on %v, want %v", got, want)
		}
		perKey := map[string]int{}
		for _, e := range want {
			perKey[e.stream]++
		}
		if len(perKey) != 3 {
			t.Errorf("60 ids went to %v: want all 3 shards used", perKey)
		}
		ack(t, rdb, got)
		// Entries added after a network fault cut every connection are read
		// once the source is back.
		killClients(t, nodes)
		more := addOrders(t, rdb, cfg, ids("b", 30)...)
		sortAdded(more)
		if got := take(t, cfg, out, len(more)); !reflect.DeepEqual(got, more) {
			t.Fatalf("after reconnecting handed on %v, want %v", got, more)
		}
		ack(t, rdb, more)
		// A cluster client retries a command whose connection broke by
		// itself (up to MaxRedirects times), so there the source may see
		// no error at all; a single-node client does not.
		if n := value(m.RedisErrors.WithLabelValues("stream")); n < 1 && !redisconn.Cluster(rdb) {
			t.Errorf("the source saw %v errors: the fault did not reach it", n)
		}
		if p := pendingPerKey(t, rdb, cfg); len(p) != 0 {
			t.Errorf("pending after every ack: %v, want none on every shard", p)
		}
	})

	// A consumer that died with entries pending on every shard loses them
	// to a live one after claim_idle (XAUTOCLAIM on each key).
	t.Run("claims every shard", func(t *testing.T) {
		cfg := shardedConfig("claims", "live")
		want := addOrders(t, rdb, cfg, ids("c", 30)...)
		sortAdded(want)
		for _, k := range cfg.Keys() {
			if err := rdb.XGroupCreateMkStream(t.Context(), k, group, "0").Err(); err != nil {
				t.Fatal(err)
			}
			if err := rdb.XReadGroup(t.Context(), &redis.XReadGroupArgs{Group: group, Consumer: "dead", Streams: []string{k, ">"}}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		out := intake.NewQueue(1000)
		runStream(t, rdb, cfg, out)
		got := take(t, cfg, out, len(want))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("claimed %v, want %v", got, want)
		}
		p := pendingPerKey(t, rdb, cfg)
		for _, k := range cfg.Keys() {
			for _, e := range p[k] {
				if e[len(e)-len("@live"):] != "@live" {
					t.Errorf("on %s entry %s is not with the live consumer", k, e)
				}
			}
		}
		ack(t, rdb, got)
		if p := pendingPerKey(t, rdb, cfg); len(p) != 0 {
			t.Errorf("pending after every ack: %v, want none", p)
		}
	})

	// A shard whose group is deleted under the running source gets it back,
	// from the shard's start (a skipped entry would be lost, a second look
	// is harmless); the other shards go on where they were.
	t.Run("group deleted on one shard", func(t *testing.T) {
		cfg := shardedConfig("regroup", "c1")
		first := addOrders(t, rdb, cfg, ids("e", 30)...)
		out := intake.NewQueue(1000)
		runStream(t, rdb, cfg, out)
		ack(t, rdb, take(t, cfg, out, len(first)))
		lost := cfg.Keys()[1]
		if err := rdb.XGroupDestroy(t.Context(), lost, group).Err(); err != nil {
			t.Fatal(err)
		}
		more := addOrders(t, rdb, cfg, ids("f", 30)...)
		want := more
		for _, e := range first {
			if e.stream == lost {
				want = append(want, e)
			}
		}
		sortAdded(want)
		got := take(t, cfg, out, len(want))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after the group of %s was deleted handed on %v, want %v", lost, got, want)
		}
		ack(t, rdb, got)
		if p := pendingPerKey(t, rdb, cfg); len(p) != 0 {
			t.Errorf("pending after every ack: %v, want none", p)
		}
	})

	// A host restarted under its consumer name hands on what it had read
	// and not acknowledged, on every shard.
	t.Run("own pending on every shard", func(t *testing.T) {
		cfg := shardedConfig("own", "fixed")
		want := addOrders(t, rdb, cfg, ids("d", 30)...)
		sortAdded(want)
		out := intake.NewQueue(1000)
		stop, _ := runStream(t, rdb, cfg, out)
		take(t, cfg, out, len(want))
		stop()
		cfg.ClaimIdle = time.Hour // nothing is claimed: the own pending list is read
		again := intake.NewQueue(1000)
		runStream(t, rdb, cfg, again)
		if got := take(t, cfg, again, len(want)); !reflect.DeepEqual(got, want) {
			t.Fatalf("after the restart handed on %v, want %v", got, want)
		}
		ack(t, rdb, want)
		if p := pendingPerKey(t, rdb, cfg); len(p) != 0 {
			t.Errorf("pending after every ack: %v, want none", p)
		}
	})
}

// killClients closes every normal client connection of nodes.
func killClients(t *testing.T, nodes []*redis.Client) {
	t.Helper()
	for _, n := range nodes {
		if err := n.Do(t.Context(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestShardedStreamSingleNode(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	t.Parallel()
	srv := redistest.Start(t)
	checkShardedStream(t, hostClient(t, config.Redis{Address: srv.Addr}), []*redis.Client{srv.Client()})
}

// On a cluster each shard is on the master owning its slot.
func TestShardedStreamCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	t.Parallel()
	cluster := redistest.StartCluster(t, 3)
	var nodes []*redis.Client
	for _, n := range cluster.Nodes {
		nodes = append(nodes, n.Client())
	}
	checkShardedStream(t, hostClient(t, config.Redis{Cluster: &config.Cluster{Addresses: cluster.Addrs()}}), nodes)
}

// hostClient is the client eventhost builds for r: it does not retry a
// failed command, so the source sees every fault.
func hostClient(t *testing.T, r config.Redis) redis.UniversalClient {
	t.Helper()
	r.DialTimeout = 5 * time.Second
	rdb, err := redisconn.New(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}
