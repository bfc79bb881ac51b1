package pipeline

import (
	"reflect"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/orders"
)

func TestRetryQueueOrdersByDueTime(t *testing.T) {
	var q retryQueue
	t0 := time.Unix(1000, 0)
	q.push(t0.Add(3*time.Second), orders.Ref{ID: "c"})
	q.push(t0.Add(1*time.Second), orders.Ref{ID: "a"})
	q.push(t0.Add(2*time.Second), orders.Ref{ID: "b"})
	q.push(t0.Add(2*time.Second), orders.Ref{ID: "b2"}) // same time: after b
	if next, ok := q.next(); !ok || !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next = %v %v, want t0+1s", next, ok)
	}
	ids := func(refs []orders.Ref) []string {
		var out []string
		for _, r := range refs {
			out = append(out, r.ID)
		}
		return out
	}
	if got := ids(q.popDue(t0, nil, 10)); got != nil {
		t.Errorf("popDue before anything is due = %v", got)
	}
	if got := ids(q.popDue(t0.Add(2*time.Second), nil, 2)); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("popDue(t0+2s, limit 2) = %v, want [a b]", got)
	}
	if got := ids(q.popDue(t0.Add(5*time.Second), []orders.Ref{{ID: "x"}}, 10)); !reflect.DeepEqual(got, []string{"x", "b2", "c"}) {
		t.Errorf("popDue(t0+5s) appended %v, want [x b2 c]", got)
	}
	if q.len() != 0 {
		t.Errorf("len = %d after popping everything", q.len())
	}
	if _, ok := q.next(); ok {
		t.Error("next on an empty queue reports a time")
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	p := &Pipeline{RetryBackoff: 100 * time.Millisecond, RetryBackoffMax: time.Second}
	want := []time.Duration{100, 100, 200, 400, 800, 1000, 1000}
	for attempt, w := range want {
		if got := p.backoff(attempt); got != w*time.Millisecond {
			t.Errorf("backoff(%d) = %v, want %v", attempt, got, w*time.Millisecond)
		}
	}
}

// TestDefaultBackoff: docs/design.md's retry schedule, as New sets it: 100ms
// before the first retry, doubling, at most 5s.
func TestDefaultBackoff(t *testing.T) {
	p := New(nil, nil, nil, nil, nil)
	want := []time.Duration{100, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000}
	for attempt, w := range want {
		if got := p.backoff(attempt); got != w*time.Millisecond {
			t.Errorf("backoff(%d) = %v, want %v", attempt, got, w*time.Millisecond)
		}
	}
}
