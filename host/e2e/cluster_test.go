package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
	"github.com/eventhost/eventhost/host/redisconn"
)

// TestClusterTutorialEquivalence is TestTutorialEquivalence on a Redis
// Cluster of 3 masters and 3 replicas: 20,000 orders published the
// tutorial's way, one host, and every key of every node compared with the
// tutorial's listeners replayed on a single server.
func TestClusterTutorialEquivalence(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	cc := cl.Client()
	ctx := context.Background()
	h := startHost(t, nil, clusterConfig(t, cl, false, ""))

	// eventhost's publisher stores a chunk's hashes before it announces
	// their ids: a pipeline across nodes keeps no order between them.
	published, err := publish.NewPublisher(cc, channel, orderPrefix).PublishMany(ctx, publish.NewGenerator(2020), 20000, 0, nil)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitApplied(t, cc, ids(published), bundled, 3*time.Minute)
	// The records shrink by themselves: the host deletes its entries
	// RecordKeep after their markers, idle or not.
	idle := time.Now()
	waitFor(t, apply.RecordKeep+10*time.Second, "the running host to delete its record entries", func() bool {
		return recordEntries(t, ctx, cc) == 0
	})
	t.Logf("the idle host deleted every record entry %s after the last order was applied", time.Since(idle).Round(100*time.Millisecond))
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	checkClusterState(t, ctx, cc, published, true)
}

// recordEntries counts the fields of every idempotency record.
func recordEntries(t *testing.T, ctx context.Context, cc *redis.ClusterClient) int {
	t.Helper()
	n := 0
	err := redisconn.ForEachMaster(ctx, cc, func(ctx context.Context, node redis.UniversalClient) error {
		keys, err := node.Keys(ctx, keyspace.RecordPrefix+"*").Result()
		if err != nil {
			return err
		}
		for _, k := range keys {
			n += int(node.HLen(ctx, k).Val())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
