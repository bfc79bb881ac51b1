package e2e

import (
	"context"
	"fmt"
	"strings"
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

// clusterConfig is writeConfig's config (u8 counters) for the cluster cl,
// on source "stream" (key purchase_orders, one node) or Pub/Sub.
func clusterConfig(t *testing.T, cl *redistest.Cluster, stream bool, extra string) string {
	t.Helper()
	placeholder := &redistest.Server{Addr: "cluster.invalid:1"}
	path := onCluster(t, writeConfig(t, placeholder, "u8", extra), placeholder, cl)
	if stream {
		path = replaceInConfig(t, path, fmt.Sprintf("source \"pubsub\" { channels = [%q] }", channel),
			fmt.Sprintf(`source "stream" {
  stream         = %q
  group          = %q
  claim_idle     = "1s"
  max_deliveries = 1000
}`, channel, streamGroup))
	}
	return path
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

// dumpCluster reads every key of every master.
func dumpCluster(t *testing.T, ctx context.Context, cc *redis.ClusterClient) map[string]value {
	t.Helper()
	out := map[string]value{}
	err := redisconn.ForEachMaster(ctx, cc, func(ctx context.Context, node redis.UniversalClient) error {
		for k, v := range dump(t, node.(*redis.Client), "") {
			out[k] = v
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkClusterState compares every key of the cluster with the tutorial's
// listeners replayed over published (ids deduplicated) on a single server,
// and checks the idempotency records: each entry names a pair marked
// done. It returns the number of record entries. With registry it checks
// and leaves out the plugin registry (Pub/Sub's catch-up writes it).
func checkClusterState(t *testing.T, ctx context.Context, cc *redis.ClusterClient, published []publish.Order, registry bool) int {
	t.Helper()
	var unique []publish.Order
	seen := map[string]bool{}
	for _, o := range published {
		if !seen[o.ID] {
			seen[o.ID] = true
			unique = append(unique, o)
		}
	}
	refSrv := redistest.Start(t)
	ref := refSrv.Client()
	replayTutorial(t, ref, unique, "u8")
	want := dump(t, ref, "")
	checkSalesTotals(t, want, unique)
	diffState(t, withoutFloats(want), modelState(unique, 8))

	got := dumpCluster(t, ctx, cc)
	if registry { // the catch-up's: Pub/Sub only
		takeRegistry(t, got, bundled...)
	}
	records := 0
	for k, v := range got {
		if !strings.HasPrefix(k, keyspace.RecordPrefix) {
			continue
		}
		delete(got, k)
		for _, line := range strings.Split(v.Data, "\n") {
			field, _, _ := strings.Cut(line, "=")
			marker, order, _ := strings.Cut(field, " ")
			if h, ok := got[order]; !ok || !strings.Contains(h.Data, marker+"=") {
				t.Errorf("record %s holds %q, but that order is not marked done", k, field)
			}
			records++
		}
	}
	orderHashes := 0
	for k, v := range got {
		if strings.HasPrefix(k, orderPrefix) {
			checkOrderHash(t, k, v)
			delete(got, k)
			orderHashes++
		}
	}
	if orderHashes != len(unique) {
		t.Errorf("%d order hashes, want %d", orderHashes, len(unique))
	}
	delete(got, channel) // the stream source's stream, if any
	diffState(t, got, want)
	t.Logf("%d orders: %d keys identical to the tutorial's; %d idempotency record entries left, all of pairs marked done", len(unique), len(want), records)
	return records
}
