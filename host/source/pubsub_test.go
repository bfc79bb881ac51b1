package source_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eventhost/eventhost/host/intake"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/source"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func value(c prometheus.Counter) float64 {
	var pb dto.Metric
	if err := c.Write(&pb); err != nil {
		return -1
	}
	return pb.GetCounter().GetValue()
}

// With the intake full, ids are dropped and counted rather than held; once
// the intake has drained to half, OnDrained asks for a catch-up, once.
func TestPubSubDropsWhenIntakeIsFull(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rdb := redistest.Start(t).Client()
	m := metrics.New()
	src := source.NewPubSub(rdb, []string{"c"}, hclog.NewNullLogger(), m)
	subscribed := make(chan struct{}, 1)
	src.OnSubscribed = func(bool) { subscribed <- struct{}{} }
	var drained atomic.Int32
	src.OnDrained = func() { drained.Add(1) }
	out := intake.NewQueue(4)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	<-subscribed

	for i := range 10 {
		if err := rdb.Publish(ctx, "c", fmt.Sprint(i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	dropped := m.OrdersDropped.WithLabelValues("c")
	waitFor(t, "6 drops", func() bool { return value(dropped) == 6 })
	if n := drained.Load(); n != 0 {
		t.Fatalf("OnDrained called %d times with the intake still full", n)
	}
	for i := range 3 { // down to 1 of 4: below half
		if ref := mustNext(t, out); ref.ID != fmt.Sprint(i) || ref.Channel != "c" {
			t.Fatalf("intake holds %+v, want id %d on c", ref, i)
		}
	}
	waitFor(t, "OnDrained", func() bool { return drained.Load() == 1 })

	// Room again: ids are handed on, not dropped.
	if err := rdb.Publish(ctx, "c", "later").Err(); err != nil {
		t.Fatal(err)
	}
	mustNext(t, out) // "3"
	if ref := mustNext(t, out); ref.ID != "later" {
		t.Errorf("after the drain the intake got %q, want later", ref.ID)
	}
	if got := value(dropped); got != 6 || drained.Load() != 1 {
		t.Errorf("dropped %v, OnDrained called %d times; want 6 and once", got, drained.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// next takes the oldest ref waiting in q, waiting up to timeout for one;
// false if none came.
func next(q *intake.Queue, timeout time.Duration) (orders.Ref, bool) {
	deadline := time.After(timeout)
	for {
		if refs, _ := q.Take(nil, 1); len(refs) == 1 {
			return refs[0], true
		}
		select {
		case <-q.Ready():
		case <-deadline:
			return orders.Ref{}, false
		}
	}
}

// mustNext is next, failing the test after 10 s.
func mustNext(t *testing.T, q *intake.Queue) orders.Ref {
	t.Helper()
	r, ok := next(q, 10*time.Second)
	if !ok {
		t.Fatal("no ref within 10s")
	}
	return r
}
