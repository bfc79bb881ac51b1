// Package e2e tests eventhost as a user runs it: the real binary, real plugin
// processes and a private redis-server.
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

// TestTutorialEquivalence publishes 20,000 orders the tutorial's way and
// checks that eventhost leaves exactly the state the tutorial's three
// listeners leave, key by key and field by field, u8 wrap-around included.
// The keys a host built before commit 761fb71 numbered its runs in are there when
// the host starts, as after an upgrade: it deletes them.
func TestTutorialEquivalence(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Run("three plugins", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		tutorialEquivalence(t, srv, writeConfig(t, srv, "u8", ""), bundled)
	})
	// The three metrics as one plugin in one process (sdk.Combine): the
	// same state, with one done marker per order.
	t.Run("combined", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Start(t)
		tutorialEquivalence(t, srv, writeCombinedConfig(t, srv, "u8"), []string{"tutorial-metrics"})
	})
}

// tutorialEquivalence publishes 20,000 orders through a host started on
// config, whose plugins are plugins, and checks that Redis ends as the
// tutorial's listeners leave it, but for eventhost's own markers.
func tutorialEquivalence(t *testing.T, srv *redistest.Server, config string, plugins []string) {
	rdb := srv.Client()
	ctx := context.Background()
	if err := rdb.HSet(ctx, "eventhost:applies", "seq", "130", "token", "0123456789abcdef.130").Err(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"0", "1", "63"} {
		if err := rdb.SAdd(ctx, "eventhost:applies:"+n, "#0123456789abcdef."+n, orderPrefix+"1").Err(); err != nil {
			t.Fatal(err)
		}
	}
	h := startHost(t, rdb, config)

	pub := publish.NewPublisher(rdb, channel, orderPrefix)
	published, err := pub.PublishMany(ctx, publish.NewGenerator(2020), 20000, 0, nil)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitApplied(t, rdb, ids(published), plugins, 2*time.Minute)
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}

	// The reference: the tutorial's listeners replayed in database 1.
	ref := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: 1})
	defer ref.Close()
	replayTutorial(t, ref, published, "u8")
	want := dump(t, ref, "")
	checkSalesTotals(t, want, published)
	diffState(t, withoutFloats(want), modelState(published, 8))

	got := dump(t, rdb, "")
	takeRegistry(t, got, plugins...)
	for k, v := range got {
		if strings.HasPrefix(k, orderPrefix) {
			checkOrderHash(t, k, v, true, plugins)
			delete(got, k)
		}
	}
	if n := len(published); len(dump(t, rdb, orderPrefix+"*")) != n {
		t.Errorf("want %d order hashes", n)
	}
	diffState(t, got, want)
	if t.Failed() {
		return
	}
	wraps := 0
	for _, o := range modelWrapCheck(published) {
		wraps += o
	}
	if wraps == 0 {
		t.Errorf("no u8 counter wrapped: the test does not exercise wrap-around")
	}
	t.Logf("%d orders: %d keys identical to the tutorial's, %d counters wrapped", len(published), len(want), wraps)
}

// modelWrapCheck counts, per histogram key and hour, how often a u8 counter
// passed 255.
func modelWrapCheck(os []publish.Order) map[string]int {
	sums := map[string]int64{}
	for _, o := range os {
		hour := time.Unix(o.TS, 0).UTC().Format("15")
		sums["all:"+hour] += o.Qty
		sums[o.Event+":"+hour] += o.Qty
	}
	out := map[string]int{}
	for k, s := range sums {
		if s > 255 {
			out[k] = int(s / 256)
		}
	}
	return out
}
