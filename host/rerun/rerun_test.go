package rerun

import (
	"testing"

	"github.com/eventhost/eventhost/host/metrics"
)

func TestCountsOf(t *testing.T) {
	m := metrics.New()
	if got := countsOf(m); got != (Counts{}) {
		t.Fatalf("fresh metrics: counts = %+v, want zero", got)
	}
	m.OrdersProcessed.WithLabelValues("orders", "a").Add(3)
	m.OrdersProcessed.WithLabelValues("refunds", "b").Add(2)
	m.OrdersDuplicate.WithLabelValues("a").Inc()
	m.OrdersDeadLettered.WithLabelValues("orders", "a", "plugin error").Add(4)
	m.OrdersDeadLettered.WithLabelValues("orders", "", "bad order").Inc()
	m.OrdersRetried.WithLabelValues("a").Add(7) // not an outcome
	want := Counts{Applied: 5, AlreadyDone: 1, DeadLettered: 5}
	if got := countsOf(m); got != want {
		t.Errorf("counts = %+v, want %+v", got, want)
	}
	if got := want.Finished(); got != 11 {
		t.Errorf("Finished = %d, want 11", got)
	}
}
