package intake_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/intake"
	"github.com/eventhost/eventhost/host/orders"
)

// TestQueueKeepsRefs: whatever a source sends comes out equal and in order,
// across chunks and batch sizes: Pub/Sub refs, stream refs, refs carrying
// more (kept whole), an empty and a huge id; Received keeps its monotonic
// reading.
func TestQueueKeepsRefs(t *testing.T) {
	now := time.Now()
	var want []orders.Ref
	for i := range 5000 {
		r := orders.Ref{ID: fmt.Sprintf("2020-%07d", i), Channel: "purchase_orders", Received: now.Add(time.Duration(i))}
		switch i % 7 {
		case 1:
			r.Channel, r.Stream, r.StreamID = "s", "s{0}", fmt.Sprintf("1700000000000-%d", i)
		case 2:
			r.Received = time.Time{}
		case 3:
			r.Only, r.Attempt = []string{"p"}, 2
		case 4:
			r.Poison, r.StreamID, r.Stream, r.Channel = "delivered too often", "1-1", "s{1}", "s"
		case 5:
			r.ID = ""
		}
		if i == 4001 {
			r.ID = strings.Repeat("x", 1<<20)
		}
		want = append(want, r)
	}
	q := intake.NewQueue(len(want))
	for _, r := range want {
		if !q.Offer(r) {
			t.Fatalf("Offer refused with %d of %d waiting", q.Len(), q.Cap())
		}
	}
	if q.Len() != len(want) || q.Offer(orders.Ref{ID: "one too many"}) {
		t.Fatalf("Len = %d, and the full queue took one more", q.Len())
	}
	var got []orders.Ref
	for i := 1; len(got) < len(want); i++ {
		var closed bool
		if got, closed = q.Take(got, len(got)+i%700+1); closed {
			t.Fatal("closed before Close")
		}
	}
	if _, closed := q.Take(nil, 10); closed || q.Len() != 0 {
		t.Fatalf("closed = %v, Len = %d after taking all", closed, q.Len())
	}
	for i := range want {
		w, g := want[i], got[i]
		if !g.Received.Equal(w.Received) || g.Received.Sub(now) != w.Received.Sub(now) || g.Received.IsZero() != w.Received.IsZero() {
			t.Errorf("ref %d: Received %v, want %v", i, g.Received, w.Received)
		}
		w.Received, g.Received = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("ref %d: %.80v, want %.80v", i, g, w)
		}
	}
}

// TestQueueStringsOutliveReuse: ids taken stay as they were while the
// queue reuses its buffers for the refs that follow.
func TestQueueStringsOutliveReuse(t *testing.T) {
	q := intake.NewQueue(4)
	var kept []orders.Ref
	for round := range 3000 {
		id := fmt.Sprintf("id-%d", round)
		if !q.Offer(orders.Ref{ID: id, Channel: "c"}) {
			t.Fatal("Offer refused")
		}
		var taken []orders.Ref
		taken, _ = q.Take(taken, 4)
		kept = append(kept, taken...)
	}
	runtime.GC()
	for i, r := range kept {
		if want := fmt.Sprintf("id-%d", i); r.ID != want || r.Channel != "c" {
			t.Fatalf("ref %d is %q on %q, want %q", i, r.ID, r.Channel, want)
		}
	}
}

// TestQueuePutWaitsForRoom: Put waits while the queue is full, until a
// Take makes room, ctx ends or the queue is closed; Take reports closed
// only once what waited is taken.
func TestQueuePutWaitsForRoom(t *testing.T) {
	q := intake.NewQueue(2)
	ctx := t.Context()
	for _, id := range []string{"a", "b"} {
		if err := q.Put(ctx, orders.Ref{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := q.Put(short, orders.Ref{ID: "c"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put into a full queue: %v, want it to wait until ctx ends", err)
	}
	put := make(chan error, 2)
	go func() { put <- q.Put(ctx, orders.Ref{ID: "c"}) }()
	go func() { put <- q.Put(ctx, orders.Ref{ID: "d"}) }()
	select {
	case err := <-put:
		t.Fatalf("Put returned %v with the queue full", err)
	case <-time.After(20 * time.Millisecond):
	}
	<-q.Ready()
	got, _ := q.Take(nil, 10)
	for range 2 {
		if err := <-put; err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	if err := q.Put(ctx, orders.Ref{ID: "e"}); !errors.Is(err, intake.ErrClosed) || q.Offer(orders.Ref{ID: "e"}) {
		t.Fatalf("Put after Close: %v, want ErrClosed; and Offer must refuse", err)
	}
	<-q.Ready()
	got, closed := q.Take(got, 10)
	if !closed || len(got) != 4 || got[0].ID != "a" || got[1].ID != "b" {
		t.Fatalf("took %v, closed %v; want a, b, then c and d, closed", got, closed)
	}
	if _, closed := q.Take(nil, 10); !closed {
		t.Fatal("a closed, empty queue must say so")
	}
}

// TestQueueCloseWakesPut: a Put waiting for room returns once the queue
// is closed.
func TestQueueCloseWakesPut(t *testing.T) {
	q := intake.NewQueue(1)
	q.Offer(orders.Ref{ID: "a"})
	put := make(chan error)
	go func() { put <- q.Put(t.Context(), orders.Ref{ID: "b"}) }()
	time.Sleep(10 * time.Millisecond)
	q.Close()
	if err := <-put; !errors.Is(err, intake.ErrClosed) {
		t.Fatalf("Put = %v, want ErrClosed", err)
	}
}

// TestQueueReadyAfterPartialTake: refs left behind by a Take that filled
// its batch keep a token in Ready, so the taker is not left waiting.
func TestQueueReadyAfterPartialTake(t *testing.T) {
	q := intake.NewQueue(10)
	for i := range 5 {
		q.Offer(orders.Ref{ID: fmt.Sprint(i)})
	}
	<-q.Ready()
	if got, _ := q.Take(nil, 2); len(got) != 2 {
		t.Fatalf("took %d", len(got))
	}
	select {
	case <-q.Ready():
	default:
		t.Fatal("3 refs wait, but Ready holds no token")
	}
	if got, _ := q.Take(nil, 10); len(got) != 3 || got[0].ID != "2" {
		t.Fatalf("took %v", got)
	}
}

// BenchmarkQueue: one ref offered and taken in batches of 512, as the
// Pub/Sub source and the pipeline do; allocations per ref (the batch's
// one string of ids, shared).
//
//	go test ./host/intake -run '^$' -bench Queue -benchmem
func BenchmarkQueue(b *testing.B) {
	const batch = 512
	q := intake.NewQueue(1 << 16)
	ids := make([]string, batch)
	for i := range ids {
		ids[i] = fmt.Sprintf("2020-%07d", i)
	}
	refs := make([]orders.Ref, 0, batch)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		for _, id := range ids {
			q.Offer(orders.Ref{ID: id, Channel: "purchase_orders", Received: now})
		}
		refs, _ = q.Take(refs[:0], batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/ref")
}
