package publish

import (
	"context"
	"errors"
	"fmt"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestGeneratorDeterministic(t *testing.T) {
	a, b, c := NewGenerator(7), NewGenerator(7), NewGenerator(8)
	same := 0
	for i := range 1000 {
		oa, ob, oc := a.Next(), b.Next(), c.Next()
		if oa != ob {
			t.Fatalf("order %d differs for the same seed: %+v vs %+v", i, oa, ob)
		}
		oa.ID, oc.ID = "", ""
		if oa == oc {
			same++
		}
	}
	if same > 10 {
		t.Errorf("seeds 7 and 8 gave %d identical orders out of 1000", same)
	}
}

func TestGeneratorFields(t *testing.T) {
	events := Events()
	if n := len(events); n < 25 || n > 35 {
		t.Errorf("got %d events, want about 30", n)
	}
	known := map[string]bool{}
	for _, e := range events {
		if known[e] {
			t.Errorf("event %q listed twice", e)
		}
		known[e] = true
		for _, r := range e {
			if r > 0x7e || r < 0x20 {
				t.Errorf("event %q is not printable ASCII", e)
			}
		}
		if _, ok := UnitPrice(e); !ok {
			t.Errorf("event %q has no unit price", e)
		}
	}
	events[0] = "changed"
	if Events()[0] == "changed" {
		t.Error("Events returned its internal slice")
	}

	g := NewGenerator(42)
	ids := map[string]bool{}
	seenEvents := map[string]bool{}
	seenQty := map[int64]bool{}
	for range 100_000 {
		o := g.Next()
		if ids[o.ID] {
			t.Fatalf("id %s repeated", o.ID)
		}
		ids[o.ID] = true
		if !strings.HasPrefix(o.ID, "42-") {
			t.Fatalf("id %s lacks the seed prefix", o.ID)
		}
		if o.TS < GamesStart || o.TS > GamesEnd {
			t.Fatalf("order %s: ts %d outside the Games", o.ID, o.TS)
		}
		if o.Qty < 1 || o.Qty > 8 {
			t.Fatalf("order %s: qty %d outside 1..8", o.ID, o.Qty)
		}
		if !known[o.Event] {
			t.Fatalf("order %s: unknown event %q", o.ID, o.Event)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(o.Who, "cust-"))
		if !strings.HasPrefix(o.Who, "cust-") || err != nil || n < 0 || n >= Customers {
			t.Fatalf("order %s: bad customer %q", o.ID, o.Who)
		}
		unit, _ := UnitPrice(o.Event)
		cents := o.Qty * unit
		// Formatting cents with integer arithmetic is the reference.
		if want := fmt.Sprintf("%d.%02d", cents/100, cents%100); o.Cost != want {
			t.Fatalf("order %s: cost %q, want %q (%d x %d cents)", o.ID, o.Cost, want, o.Qty, unit)
		}
		seenEvents[o.Event] = true
		seenQty[o.Qty] = true
	}
	if len(seenEvents) != len(known) || len(seenQty) != 8 {
		t.Errorf("100k orders covered %d/%d events and %d/8 quantities", len(seenEvents), len(known), len(seenQty))
	}
}

func TestGamesBounds(t *testing.T) {
	if got := time.Unix(GamesStart, 0).UTC().Format(time.RFC3339); got != "2021-07-23T00:00:00Z" {
		t.Errorf("GamesStart = %s", got)
	}
	if got := time.Unix(GamesEnd, 0).UTC().Format(time.RFC3339); got != "2021-08-08T23:59:59Z" {
		t.Errorf("GamesEnd = %s", got)
	}
}

func TestFormatCents(t *testing.T) {
	for cents, want := range map[int64]string{0: "0.00", 5: "0.05", 24550: "245.50", 760000: "7600.00", 95001: "950.01"} {
		if got := FormatCents(cents); got != want {
			t.Errorf("FormatCents(%d) = %q, want %q", cents, got, want)
		}
	}
}

func TestPublishIntegration(t *testing.T) {
	rdb := startRedis(t)
	ctx := t.Context()
	const channel, prefix, n = "purchase_orders", "purchase_order_details:", 1000

	sub := rdb.Subscribe(ctx, channel)
	t.Cleanup(func() { sub.Close() })
	// Receive waits for the subscription to be confirmed, so nothing
	// published after this is missed.
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	received := make(chan []string, 1)
	go func() {
		var ids []string
		ch := sub.Channel()
		for len(ids) < n {
			select {
			case m := <-ch:
				ids = append(ids, m.Payload)
			case <-time.After(10 * time.Second):
				received <- ids
				return
			}
		}
		received <- ids
	}()

	var calls []int
	orders, err := NewPublisher(rdb, channel, prefix).PublishMany(ctx, NewGenerator(1), n, 0, func(done int) { calls = append(calls, done) })
	if err != nil {
		t.Fatalf("PublishMany: %v", err)
	}
	if len(orders) != n {
		t.Fatalf("published %d orders, want %d", len(orders), n)
	}
	if want := (n + chunkSize - 1) / chunkSize; len(calls) != want || calls[len(calls)-1] != n {
		t.Errorf("progress calls %v, want %d calls ending at %d", calls, want, n)
	}

	ids := <-received
	if len(ids) != n {
		t.Fatalf("received %d ids on %s, want %d", len(ids), channel, n)
	}
	for i, o := range orders {
		if ids[i] != o.ID {
			t.Fatalf("message %d is %q, want %q", i, ids[i], o.ID)
		}
	}

	pipe := rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, n)
	for i, o := range orders {
		cmds[i] = pipe.HGetAll(ctx, prefix+o.ID)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("read back hashes: %v", err)
	}
	for i, o := range orders {
		got, want := cmds[i].Val(), o.Hash()
		if fmt.Sprint(got) != fmt.Sprint(want) { // fmt sorts map keys
			t.Fatalf("hash of %s = %v, want %v", o.ID, got, want)
		}
	}
	if size, err := rdb.DBSize(ctx).Result(); err != nil || size != n {
		t.Errorf("DBSIZE = %d, %v; want %d", size, err, n)
	}
}

func TestPublishPacedAndCancelled(t *testing.T) {
	rdb := startRedis(t)
	ctx := t.Context()
	p := NewPublisher(rdb, "purchase_orders", "po:")

	o := NewGenerator(3).Next()
	if err := p.Publish(ctx, o); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := rdb.HGet(ctx, "po:"+o.ID, "cost").Val(); got != o.Cost {
		t.Errorf("cost of %s = %q, want %q", o.ID, got, o.Cost)
	}

	// 50 orders at 500/s: the last is due 98ms after the first.
	start := time.Now()
	orders, err := p.PublishMany(ctx, NewGenerator(4), 50, 500, nil)
	if err != nil || len(orders) != 50 {
		t.Fatalf("paced PublishMany: %d orders, %v", len(orders), err)
	}
	if el := time.Since(start); el < 90*time.Millisecond || el > 5*time.Second {
		t.Errorf("50 orders at 500/s took %v", el)
	}

	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	orders, err = p.PublishMany(cctx, NewGenerator(5), 1000, 20, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled PublishMany: err = %v, want deadline exceeded", err)
	}
	if len(orders) == 0 || len(orders) > 4 {
		t.Errorf("cancelled PublishMany at 20/s published %d orders in 100ms", len(orders))
	}
}

// startRedis runs a private redis-server for the test.
func startRedis(t *testing.T) *redis.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	return redistest.Start(t).Client()
}
