package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/publish"
)

// TestStreamIDBeforeHash: a stream entry may name an order whose hash is
// not stored yet. The host keeps it pending and tries again until the hash
// appears (then it is counted, once) or missing_hash_wait has passed (then
// it is dead-lettered without marking the order, and acknowledged, and
// `deadletter replay` counts it once the hash exists). Nothing is lost.
func TestStreamIDBeforeHash(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	cfg := streamConfig(t, srv, "")
	cfg = replaceInConfig(t, cfg, "  max_deliveries = 3\n", "  max_deliveries = 3\n  missing_hash_wait = \"4s\"\n")
	h := startHost(t, rdb, cfg)

	gen := publish.NewGenerator(6161)
	early, never, normal := gen.Next(), gen.Next(), gen.Next()
	announce := func(o publish.Order) {
		t.Helper()
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: channel, Values: []any{"id", o.ID}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	store := func(o publish.Order) {
		t.Helper()
		if err := rdb.HSet(ctx, orderPrefix+o.ID, o.Fields()...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	announce(early)
	announce(never)
	// The host has read both and holds them pending while their hashes
	// are missing.
	waitFor(t, 20*time.Second, "the host to read both entries", func() bool {
		p, err := rdb.XPending(ctx, channel, streamGroup).Result()
		return err == nil && p.Count == 2
	})
	time.Sleep(time.Second) // a few tries find no hash
	store(early)
	if err := publish.NewStreamPublisher(rdb, channel, orderPrefix).Publish(ctx, normal); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, rdb, []string{early.ID, normal.ID}, bundled, 30*time.Second)

	// never: dead-lettered once missing_hash_wait has passed, unmarked.
	waitFor(t, 30*time.Second, "the order without a hash to be dead-lettered", func() bool {
		return len(rdb.XRange(ctx, deadLetterStream, "-", "+").Val()) == 1
	})
	letters := rdb.XRange(ctx, deadLetterStream, "-", "+").Val()
	if v := letters[0].Values; v["order_id"] != never.ID || v["plugin"] != "" || !strings.Contains(v["reason"].(string), "does not exist") {
		t.Errorf("dead letter = %v, want order %s, no plugin, hash does not exist", v, never.ID)
	}
	if n := rdb.Exists(ctx, orderPrefix+never.ID).Val(); n != 0 {
		t.Errorf("the dead letter created the order's hash (a marker)")
	}
	checkStreamSettled(t, rdb)
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}

	// Its hash turns up after all: a replay counts it.
	store(never)
	mustRun(t, 0, "deadletter", "replay", "-config", cfg, "-all")
	all := []publish.Order{early, never, normal}
	checkOrderHashes(t, rdb, all, bundled)
	checkTutorialStateAnyOrder(t, rdb, all)
	if n := rdb.XLen(ctx, deadLetterStream).Val(); n != 0 {
		t.Errorf("%d dead letters left after the replay, want 0", n)
	}
}
