package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
)

// TestInterruptedHistoryMarking: the host is SIGKILLed while it marks the
// history of its (new) plugins, orders are published while it is down, and
// it starts again. Those orders were stored after the plugins were first
// registered: they must be counted, not marked as history. The interrupted
// marking is voided instead, so the history is counted too, each order
// once.
func TestInterruptedHistoryMarking(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	gen := publish.NewGenerator(8101)

	// Enough history that marking it takes a while.
	const stored = 30000
	history := make([]publish.Order, 0, stored)
	for len(history) < stored {
		pipe := rdb.Pipeline()
		for range 1000 {
			o := gen.Next()
			history = append(history, o)
			pipe.HSet(ctx, orderPrefix+o.ID, o.Fields()...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The marking walks SCAN's first page first: wait for its first key.
	first, _, err := rdb.Scan(ctx, 0, orderPrefix+"*", 500).Result()
	if err != nil || len(first) == 0 {
		t.Fatalf("scan: %v, %d keys", err, len(first))
	}

	cfgPath := writeConfig(t, srv, "u8", "")
	h := launchHost(t, cfgPath, nil)
	waitFor(t, 30*time.Second, "the marking to begin", func() bool {
		return rdb.HExists(ctx, first[0], keyspace.HistoryField(bundled[0])).Val()
	})
	h.kill()
	reg := rdb.HGetAll(ctx, keyspace.RegistryKey).Val()
	for _, p := range bundled {
		if !strings.HasPrefix(reg[p], "marking:") {
			t.Fatalf("after the kill, the registry holds %q for %s, want marking:TOKEN (the marking finished first: store more history)", reg[p], p)
		}
	}

	// Published while no host runs.
	meanwhile, err := publish.NewPublisher(rdb, channel, orderPrefix).PublishMany(ctx, gen, 50, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	h = startHost(t, rdb, cfgPath)
	all := append(append([]publish.Order{}, history...), meanwhile...)
	waitApplied(t, rdb, ids(meanwhile), bundled, time.Minute)
	waitApplied(t, rdb, ids(all), bundled, 3*time.Minute)
	if code := h.stop(t); code != 0 {
		t.Fatalf("eventhost exited %d after SIGTERM, want 0", code)
	}

	checkOrderHashes(t, rdb, meanwhile, bundled)
	checkTutorialStateAnyOrder(t, rdb, all)
	takeRegistry(t, dump(t, rdb, keyspace.RegistryKey), bundled...)
	if !strings.Contains(h.log.String(), "the marking of this plugin's history was interrupted") {
		t.Error("the log does not say that the interrupted marking was voided")
	}
}
