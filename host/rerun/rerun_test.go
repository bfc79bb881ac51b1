package rerun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/pipeline"
	"github.com/eventhost/eventhost/host/publish"
)

func TestCountsOf(t *testing.T) {
	if got := countsOf(pipeline.Snapshot{}); got != (Counts{}) {
		t.Fatalf("nothing done: counts = %+v, want zero", got)
	}
	s := pipeline.Snapshot{
		Applied:     map[string]int64{"a": 3, "b": 2},
		AlreadyDone: 1, DeadLettered: 5,
		BatchesStarted: 4, BatchesFinished: 4, RedisRetries: 7, // not outcomes of pairs
	}
	want := Counts{Applied: 5, AlreadyDone: 1, DeadLettered: 5}
	if got := countsOf(s); got != want {
		t.Errorf("counts = %+v, want %+v", got, want)
	}
	if got := want.Finished(); got != 11 {
		t.Errorf("Finished = %d, want 11", got)
	}
}

// TestBackfillCountsItsOwnRun runs two backfills in one process, sharing one
// set of metrics as a process exporting them would: each report counts its
// own run's pairs, and the metrics count both runs.
func TestBackfillCountsItsOwnRun(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	ctx := context.Background()

	const channel, prefix = "purchase_orders", "purchase_order_details:"
	cfg := loadConfig(t, fmt.Sprintf(`
redis { address = %q }
source "pubsub" { channels = [%q] }
plugin_dir = %q
plugin "events-summary" {}
plugin "customer-invoices" {}
`, srv.Addr, channel, testbin.PluginDir(t)))

	pub := publish.NewPublisher(rdb, channel, prefix)
	gen := publish.NewGenerator(1)
	const good = 10
	var ids []string
	for range good {
		o := gen.Next()
		if err := pub.Publish(ctx, o); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.ID)
	}
	// A hash the loader refuses: the first backfill dead-letters it and
	// marks it, so the second passes it over.
	if err := rdb.HSet(ctx, prefix+"bad", "ts", "x", "qty", "1", "cost", "1.00", "event", "e", "who", "w").Err(); err != nil {
		t.Fatal(err)
	}

	m := metrics.New()
	logger := hclog.NewNullLogger()
	first, err := Backfill(ctx, cfg, rdb, logger, m, "events-summary", nil)
	if err != nil {
		t.Fatalf("backfill events-summary: %v", err)
	}
	if want := (Counts{Applied: good, DeadLettered: 1}); first.Counts != want {
		t.Errorf("first backfill counts = %+v, want %+v", first.Counts, want)
	}
	second, err := Backfill(ctx, cfg, rdb, logger, m, "customer-invoices", nil)
	if err != nil {
		t.Fatalf("backfill customer-invoices: %v", err)
	}
	if want := (Counts{Applied: good}); second.Counts != want {
		t.Errorf("second backfill counts = %+v, want %+v (its own pairs only)", second.Counts, want)
	}

	// The first backfill marks its plugin with a list (the batch's only
	// plugin), the second, finding a list there, with a field of its own.
	for _, id := range ids {
		got, err := rdb.HMGet(ctx, prefix+id, keyspace.DoneListField, keyspace.DoneField("events-summary"), keyspace.DoneField("customer-invoices")).Result()
		if err != nil {
			t.Fatal(err)
		}
		list, _ := got[0].(string)
		if _, names, _ := strings.Cut(list, " "); names != "events-summary" || got[1] != nil || got[2] == nil {
			t.Errorf("order %s: done markers (list, events-summary, customer-invoices) = %q, want a list naming events-summary and a field for customer-invoices", id, got)
		}
	}
	if n, err := rdb.XLen(ctx, cfg.DeadLetter.Stream).Result(); err != nil || n != 1 {
		t.Errorf("dead letters = %d (%v), want 1", n, err)
	}
	// Metrics stay an output, and count both runs.
	for _, p := range []string{"events-summary", "customer-invoices"} {
		var pb dto.Metric
		if err := m.OrdersProcessed.WithLabelValues(channel, p).Write(&pb); err != nil {
			t.Fatal(err)
		}
		if got := pb.GetCounter().GetValue(); got != good {
			t.Errorf("orders processed metric of %s = %v, want %d", p, got, good)
		}
	}
}

func loadConfig(t *testing.T, src string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "eventhost.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	return cfg
}
