package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/publish"
)

// TestStreamTwoHosts: two hosts in one consumer group share the stream and
// together count every order exactly once; when one is killed with entries
// pending, the other claims them after claim_idle.
func TestStreamTwoHosts(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	a := startHost(t, rdb, streamConfig(t, srv, ""))
	b := startHost(t, rdb, streamConfig(t, srv, ""))
	addrA, addrB := a.metricsAddr(t), b.metricsAddr(t)

	pub := publish.NewStreamPublisher(rdb, channel, orderPrefix)
	gen := publish.NewGenerator(5150)
	first, err := pub.PublishMany(ctx, gen, 3000, 3000, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, rdb, ids(first), bundled, 60*time.Second)
	// The counters lag the Redis writes they count by a moment: poll.
	var perHost []float64
	waitFor(t, 10*time.Second, fmt.Sprintf("the hosts' events-summary counters to add up to %d", len(first)), func() bool {
		perHost = perHost[:0]
		for _, addr := range []string{addrA, addrB} {
			n, _ := scrapeMetric(t, addr, `eventhost_orders_processed_total{channel="purchase_orders",plugin="events-summary"}`)
			perHost = append(perHost, n)
		}
		return perHost[0]+perHost[1] == float64(len(first))
	})
	if perHost[0] == 0 || perHost[1] == 0 {
		t.Errorf("events-summary applied %v orders on the two hosts, want both > 0", perHost)
	}

	// Kill A while orders flow (once the first 300 of them are applied):
	// what it read and did not apply stays pending with it until B claims
	// it.
	probe := publish.NewGenerator(5150)
	var next []string
	for i := 0; i < len(first)+300; i++ {
		if o := probe.Next(); i >= len(first) {
			next = append(next, o.ID)
		}
	}
	pubCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan []publish.Order, 1)
	var pubErr error
	go func() {
		more, err := pub.PublishMany(pubCtx, gen, 3000, 3000, nil)
		pubErr = err
		done <- more
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitApplied(t, rdb, next, bundled, 60*time.Second)
	a.kill()
	second := <-done
	done <- second // for the cleanup
	if pubErr != nil {
		t.Fatal(pubErr)
	}
	all := append(first, second...)
	waitApplied(t, rdb, ids(all), bundled, 60*time.Second)
	if code := b.stop(t); code != 0 {
		t.Errorf("host B exited %d after SIGTERM, want 0", code)
	}

	checkStreamSettled(t, rdb)
	checkNoDeadLetters(t, rdb)
	checkOrderHashes(t, rdb, all, bundled)
	checkTutorialStateAnyOrder(t, rdb, all)
	if !strings.Contains(b.log.String(), "claimed entries another consumer left pending") {
		t.Log("host B claimed nothing: A had no entry pending when it was killed (exactly-once was still checked)")
	}
}

// TestStreamPoison: an entry without an order id, and an entry some
// consumer took more than max_deliveries times, are dead-lettered and
// acknowledged; the orders around them are counted as usual.
func TestStreamPoison(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	pub := publish.NewStreamPublisher(rdb, channel, orderPrefix)
	gen := publish.NewGenerator(5151)

	// A ghost consumer reads an entry and has it delivered again and again
	// (XCLAIM counts a delivery each time), then dies.
	if err := rdb.XGroupCreateMkStream(ctx, channel, streamGroup, "$").Err(); err != nil {
		t.Fatal(err)
	}
	cursed := gen.Next()
	if err := pub.Publish(ctx, cursed); err != nil {
		t.Fatal(err)
	}
	res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: streamGroup, Consumer: "ghost", Streams: []string{channel, ">"}, Count: 1}).Result()
	if err != nil || len(res[0].Messages) != 1 {
		t.Fatalf("ghost read: %v %v", res, err)
	}
	cursedEntry := res[0].Messages[0].ID
	for range 3 {
		if err := rdb.XClaim(ctx, &redis.XClaimArgs{Stream: channel, Group: streamGroup, Consumer: "ghost", Messages: []string{cursedEntry}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	noID, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: channel, Values: []any{"order", "x"}}).Result()
	if err != nil {
		t.Fatal(err)
	}

	h := startHost(t, rdb, streamConfig(t, srv, ""))
	good, err := pub.PublishMany(ctx, gen, 200, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, rdb, ids(good), bundled, 30*time.Second)
	waitFor(t, 30*time.Second, "2 dead letters", func() bool {
		n, _ := rdb.XLen(ctx, deadLetterStream).Result()
		return n >= 2
	})
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}

	letters, err := deadletter.List(ctx, rdb, deadLetterStream, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		noID:        fmt.Sprintf("stream entry %s has no \"id\" field holding an order id", noID),
		cursedEntry: fmt.Sprintf("stream entry %s was delivered 5 times without being finished (max_deliveries 3)", cursedEntry),
	}
	if len(letters) != len(want) {
		t.Errorf("%d dead letters, want %d: %+v", len(letters), len(want), letters)
	}
	for _, l := range letters {
		found := false
		for _, reason := range want {
			found = found || l.Reason == reason
		}
		if !found || l.Plugin != "" || l.Channel != channel {
			t.Errorf("dead letter %+v, want plugin \"\", channel %s and one of the reasons %q", l, channel, want)
		}
	}
	checkStreamSettled(t, rdb)
	checkOrderHashes(t, rdb, good, bundled)
	// The cursed order was never counted: it carries only the dead marker.
	got, _ := rdb.HGetAll(ctx, orderPrefix+cursed.ID).Result()
	if _, ok := got["eventhost:dead"]; !ok || len(got) != len(cursed.Hash())+1 {
		t.Errorf("%s%s = %v, want its fields and the eventhost:dead marker only", orderPrefix, cursed.ID, got)
	}
	checkTutorialState(t, rdb, good)
}

// TestStreamLostDelivery: an entry delivered to the host's consumer in a
// reply that never reached it (Redis died right after sending it) sits in
// the consumer's pending list. The host must not renew it forever as if it
// held it: it takes it back and processes it. The test delivers an entry to
// the host's consumer name itself, which is what such a lost reply leaves.
func TestStreamLostDelivery(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	cfg := streamConfig(t, srv, "")
	cfg = replaceInConfig(t, cfg, `group          = "eventhost"`, "group          = \"eventhost\"\n  consumer       = \"c1\"")
	h := startHost(t, rdb, cfg)

	o := publish.NewGenerator(5252).Next()
	tx := rdb.TxPipeline()
	tx.HSet(ctx, orderPrefix+o.ID, o.Fields()...)
	tx.XAdd(ctx, &redis.XAddArgs{Stream: channel, Values: []any{publish.StreamIDField, o.ID}})
	// In the same transaction, so the host's blocked read cannot get it first.
	read := tx.XReadGroup(ctx, &redis.XReadGroupArgs{Group: streamGroup, Consumer: "c1", Streams: []string{channel, ">"}, Count: 1})
	if _, err := tx.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if res := read.Val(); len(res) != 1 || len(res[0].Messages) != 1 {
		t.Fatalf("the test's read got %v, want the one entry", res)
	}
	waitApplied(t, rdb, []string{o.ID}, bundled, 30*time.Second)
	waitFor(t, 10*time.Second, "the entry to be acknowledged", func() bool {
		p, err := rdb.XPending(ctx, channel, streamGroup).Result()
		return err == nil && p.Count == 0
	})
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(h.log.String(), "taking back pending entries whose delivery never arrived") {
		t.Error("the host log does not say it took the entry back")
	}
	checkNoDeadLetters(t, rdb)
	checkOrderHashes(t, rdb, []publish.Order{o}, bundled)
	checkTutorialState(t, rdb, []publish.Order{o})
}

// TestStreamRecreated: when the stream (and with it the group) is deleted
// under a running host and appended to again, the host creates the group
// again and counts every new entry, from the new stream's start.
func TestStreamRecreated(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	h := startHost(t, rdb, streamConfig(t, srv, ""))
	pub := publish.NewStreamPublisher(rdb, channel, orderPrefix)
	gen := publish.NewGenerator(5353)
	first, err := pub.PublishMany(ctx, gen, 50, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, rdb, ids(first), bundled, 30*time.Second)
	if err := rdb.Del(ctx, channel).Err(); err != nil {
		t.Fatal(err)
	}
	second, err := pub.PublishMany(ctx, gen, 50, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, rdb, ids(second), bundled, 30*time.Second)
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(h.log.String(), "consumer group is gone; creating it again") {
		t.Error("the host log does not say it created the group again")
	}
	all := append(first, second...)
	checkStreamSettled(t, rdb)
	checkNoDeadLetters(t, rdb)
	checkOrderHashes(t, rdb, all, bundled)
	checkTutorialState(t, rdb, all)
}

// TestStreamLeaseRenewed: a host that holds entries longer than claim_idle
// because its pipeline is slow (liar hangs 3s on one order, claim_idle is
// 600ms) renews them, so that the other host of the group, and its own
// claim pass, never take them: nothing is claimed, each order is counted
// once.
func TestStreamLeaseRenewed(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	gen := publish.NewGenerator(5454)
	orders := make([]publish.Order, 200)
	for i := range orders {
		orders[i] = gen.Next()
	}
	slow := orders[50].ID
	cfg := streamConfig(t, srv, liarBlock(t, `  timeout = "1m"`, map[string]string{"mode": "hang", "match": slow, "hang": "3s"}))
	cfg = replaceInConfig(t, cfg, `claim_idle     = "1s"`, `claim_idle     = "600ms"`)
	a := startHost(t, rdb, cfg)
	b := startHost(t, rdb, cfg)
	pub := publish.NewStreamPublisher(rdb, channel, orderPrefix)
	for _, o := range orders {
		if err := pub.Publish(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	all := append([]string{liarName}, bundled...)
	waitApplied(t, rdb, ids(orders), all, 60*time.Second)
	waitFor(t, 30*time.Second, "every entry to be acknowledged", func() bool {
		p, err := rdb.XPending(ctx, channel, streamGroup).Result()
		return err == nil && p.Count == 0
	})
	for _, h := range []*host{a, b} {
		if n, ok := scrapeMetric(t, h.metricsAddr(t), "eventhost_stream_claimed_total"); !ok || n != 0 {
			t.Errorf("host %d claimed %v entries (exported: %v), want 0: a live host's entries were taken", h.cmd.Process.Pid, n, ok)
		}
	}
	for _, h := range []*host{a, b} {
		if code := h.stop(t); code != 0 {
			t.Errorf("host %d exited %d after SIGTERM, want 0", h.cmd.Process.Pid, code)
		}
	}
	checkNoDeadLetters(t, rdb)
	checkOrderHashes(t, rdb, orders, all)
	if n, err := rdb.SCard(ctx, liarOrders).Result(); err != nil || n != int64(len(orders)) {
		t.Errorf("%s holds %d orders (%v), want %d", liarOrders, n, err, len(orders))
	}
}
