package publish_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/publish"
)

const prefix = "purchase_order_details:"

// masterOf returns the address of the master that owns key's slot.
func masterOf(t *testing.T, rdb *redis.ClusterClient, key string) string {
	t.Helper()
	slot, err := rdb.ClusterKeySlot(t.Context(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
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

// On a cluster an order's hash and its announcement are on different
// nodes, and a pipeline to several nodes keeps no order between them: the
// publisher stores first and announces once the store is acknowledged. The
// hash's master is paused for writes while the order is published, so an
// announcement sent beside its HSET would arrive first, and the reader,
// looking the hash up on receipt, would find nothing.
func TestPublishOnClusterStoresBeforeAnnouncing(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	t.Parallel()
	cluster := redistest.StartCluster(t, 3)
	rdb := cluster.Client()
	nodes := map[string]*redis.Client{}
	for _, n := range cluster.Nodes {
		nodes[n.Addr] = n.Client()
	}
	tests := []struct {
		name string
		pub  func() *publish.Publisher
		// where returns the key or channel order id is announced on.
		where func(id string) string
		// receive waits for one announcement on where and returns its id.
		receive func(ctx context.Context, where string, subscribed chan<- struct{}) (string, error)
	}{
		{
			name: "stream shards",
			pub: func() *publish.Publisher {
				p := publish.NewStreamPublisher(rdb, "po", prefix)
				p.Shards = 3
				return p
			},
			where: func(id string) string { return config.Stream{Key: "po", Shards: 3}.KeyFor(id) },
			receive: func(ctx context.Context, key string, subscribed chan<- struct{}) (string, error) {
				close(subscribed) // a new stream: a read from 0 waits for its first entry
				res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{key, "0"}, Block: 10 * time.Second, Count: 1}).Result()
				if err != nil {
					return "", err
				}
				id, _ := res[0].Messages[0].Values[publish.StreamIDField].(string)
				return id, nil
			},
		},
		{
			name: "sharded channel",
			pub: func() *publish.Publisher {
				p := publish.NewPublisher(rdb, "orders-s", prefix)
				p.Sharded = true
				return p
			},
			where: func(string) string { return "orders-s" },
			receive: func(ctx context.Context, ch string, subscribed chan<- struct{}) (string, error) {
				ps := rdb.SSubscribe(ctx, ch)
				defer ps.Close()
				return receive(ctx, ps, subscribed)
			},
		},
		{
			name:  "channel",
			pub:   func() *publish.Publisher { return publish.NewPublisher(rdb, "orders-p", prefix) },
			where: func(string) string { return "orders-p" },
			receive: func(ctx context.Context, ch string, subscribed chan<- struct{}) (string, error) {
				ps := rdb.Subscribe(ctx, ch)
				defer ps.Close()
				return receive(ctx, ps, subscribed)
			},
		},
	}
	gen := publish.NewGenerator(11)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			// An order whose hash is on another master than its
			// announcement.
			o := gen.Next()
			for masterOf(t, rdb, prefix+o.ID) == masterOf(t, rdb, tt.where(o.ID)) {
				o = gen.Next()
			}
			subscribed := make(chan struct{})
			type seen struct {
				id   string
				hash map[string]string
				err  error
			}
			got := make(chan seen, 1)
			go func() {
				id, err := tt.receive(ctx, tt.where(o.ID), subscribed)
				if err != nil {
					got <- seen{err: err}
					return
				}
				h, err := rdb.HGetAll(ctx, prefix+id).Result()
				got <- seen{id, h, err}
			}()
			<-subscribed
			if err := nodes[masterOf(t, rdb, prefix+o.ID)].Do(ctx, "CLIENT", "PAUSE", 300, "WRITE").Err(); err != nil {
				t.Fatal(err)
			}
			if err := tt.pub().Publish(ctx, o); err != nil {
				t.Fatal(err)
			}
			s := <-got
			if s.err != nil {
				t.Fatal(s.err)
			}
			if s.id != o.ID || !reflect.DeepEqual(s.hash, o.Hash()) {
				t.Errorf("on receiving id %s the reader found hash %v; want id %s with %v", s.id, s.hash, o.ID, o.Hash())
			}
		})
	}
}

func receive(ctx context.Context, ps *redis.PubSub, subscribed chan<- struct{}) (string, error) {
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		return "", err
	}
	close(subscribed)
	msg, err := ps.ReceiveMessage(ctx)
	if err != nil {
		return "", err
	}
	return msg.Payload, nil
}

// PublishMany to a sharded stream on a cluster stores every order and
// appends each id once, to the shard KeyFor names, in publishing order
// within a shard.
func TestPublishManyToStreamShardsOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	t.Parallel()
	rdb := redistest.StartCluster(t, 3).Client()
	ctx := t.Context()
	cfg := config.Stream{Key: "po", Shards: 4}
	p := publish.NewStreamPublisher(rdb, cfg.Key, prefix)
	p.Shards = cfg.Shards
	published, err := p.PublishMany(ctx, publish.NewGenerator(3), 600, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, o := range published {
		k := cfg.KeyFor(o.ID)
		want[k] = append(want[k], o.ID)
		h, err := rdb.HGetAll(ctx, prefix+o.ID).Result()
		if err != nil || !reflect.DeepEqual(h, o.Hash()) {
			t.Fatalf("order %s stored as %v, %v; want %v", o.ID, h, err, o.Hash())
		}
	}
	got := map[string][]string{}
	for _, k := range cfg.Keys() {
		msgs, err := rdb.XRange(ctx, k, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got[k] = append(got[k], m.Values[publish.StreamIDField].(string))
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries per shard differ from KeyFor's choice")
	}
	if len(got) != 4 {
		t.Errorf("600 orders went to %d shards, want 4", len(got))
	}
	var masters []string
	for _, k := range cfg.Keys() {
		if m := masterOf(t, rdb, k); !slices.Contains(masters, m) {
			masters = append(masters, m)
		}
	}
	if len(masters) < 2 {
		t.Errorf("the 4 shards are all on %v: want them spread over masters", masters)
	}
}
