package pipeline

import (
	"reflect"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/intake"
	"github.com/eventhost/eventhost/host/orders"
)

// A batch takes the ids already waiting, live ones first, then found ones
// (a catch-up's), up to MaxOrders, and goes: with MaxWait 0 it never waits
// for more (a wait here would hang the test, as no more ids come). With
// MaxWait set, it waits for live company until the intake closes or the
// batch is full.
func TestFillTakesWhatIsWaiting(t *testing.T) {
	refs := func(ids ...string) []orders.Ref {
		out := make([]orders.Ref, len(ids))
		for i, id := range ids {
			out[i] = orders.Ref{ID: id}
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		maxOrders int
		maxWait   time.Duration
		waiting   []string
		found     []string // waiting on the catch-up's intake
		close     bool
		first     []string // already in the batch
		want      []string
		wantOpen  bool
		wantLeft  int
		wantFound int // left on the catch-up's intake
	}{
		{name: "all waiting ids", maxOrders: 10, waiting: []string{"b", "c"}, first: []string{"a"}, want: []string{"a", "b", "c"}, wantOpen: true},
		{name: "nothing waiting: goes alone", maxOrders: 10, first: []string{"a"}, want: []string{"a"}, wantOpen: true},
		{name: "at most max_orders", maxOrders: 2, waiting: []string{"b", "c"}, first: []string{"a"}, want: []string{"a", "b"}, wantOpen: true, wantLeft: 1},
		{name: "intake closed", maxOrders: 10, waiting: []string{"b"}, close: true, first: []string{"a"}, want: []string{"a", "b"}},
		{name: "max_wait waits until closed", maxOrders: 10, maxWait: time.Hour, waiting: []string{"b"}, close: true, first: []string{"a"}, want: []string{"a", "b"}},
		{name: "live first, then found", maxOrders: 4, waiting: []string{"b", "c"}, found: []string{"x", "y", "z"}, first: []string{"a"}, want: []string{"a", "b", "c", "x"}, wantOpen: true, wantFound: 2},
		{name: "found fills what live leaves", maxOrders: 10, found: []string{"x", "y"}, first: []string{"a"}, want: []string{"a", "x", "y"}, wantOpen: true},
		{name: "no room for found", maxOrders: 2, waiting: []string{"b", "c"}, found: []string{"x"}, first: []string{"a"}, want: []string{"a", "b"}, wantOpen: true, wantLeft: 1, wantFound: 1},
		{name: "max_orders 0 counts as 1", waiting: []string{"b", "c"}, want: []string{"b"}, wantOpen: true, wantLeft: 1},
		{name: "max_wait waits until full", maxOrders: 3, maxWait: time.Hour, waiting: []string{"b", "c", "d"}, first: []string{"a"}, want: []string{"a", "b", "c"}, wantOpen: true, wantLeft: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Pipeline{MaxOrders: tc.maxOrders, MaxWait: tc.maxWait}
			in := intake.NewQueue(10)
			for _, r := range refs(tc.waiting...) {
				in.Offer(r)
			}
			if tc.close {
				in.Close()
			}
			found := make(chan orders.Ref, 10)
			for _, r := range refs(tc.found...) {
				found <- r
			}
			timer := time.NewTimer(time.Hour)
			timer.Stop()
			got, open := p.fill(refs(tc.first...), inputs{live: in, found: found}, timer)
			if !reflect.DeepEqual(got, refs(tc.want...)) {
				t.Errorf("batch = %v, want %v", got, refs(tc.want...))
			}
			if (open.live != nil) != tc.wantOpen {
				t.Errorf("intake returned open = %v, want %v", open.live != nil, tc.wantOpen)
			}
			if len(found) != tc.wantFound {
				t.Errorf("%d found ids left waiting, want %d", len(found), tc.wantFound)
			}
			if !tc.close && in.Len() != tc.wantLeft {
				t.Errorf("%d ids left waiting, want %d", in.Len(), tc.wantLeft)
			}
		})
	}
}
