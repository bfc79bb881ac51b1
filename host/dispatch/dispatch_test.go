package dispatch_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/dispatch"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/sdk"
)

// gated is a plugin that writes SADD <name> <id> for each order, and holds
// each batch until release is closed, once started is closed.
type gated struct {
	name    string
	started chan struct{}
	release chan struct{}
}

func (g *gated) Name() string { return g.name }

func (g *gated) Process(_ context.Context, os []sdk.Order) ([]sdk.Result, error) {
	if g.started != nil {
		close(g.started)
		<-g.release
	}
	out := make([]sdk.Result, len(os))
	for i, o := range os {
		out[i] = sdk.Result{Effects: []sdk.Effect{{Command: "SADD", Key: g.name, Args: []string{o.ID}}}}
	}
	return out, nil
}

func target(p dispatch.Processor) dispatch.Target {
	return dispatch.Target{Processor: p, Channels: []string{"c"}, Policy: policy.New(p.Name(), []string{p.Name()}, nil)}
}

func plugins(out dispatch.Outcome) []string {
	var names []string
	for _, w := range out.Writes {
		names = append(names, w.Plugin)
	}
	return names
}

// TestSetTargetsBetweenBatches: a swap waits for the batch in flight, which
// finishes on the old targets; the next batch goes to the new ones only.
func TestSetTargetsBetweenBatches(t *testing.T) {
	old := &gated{name: "old", started: make(chan struct{}), release: make(chan struct{})}
	d := dispatch.New([]dispatch.Target{target(old)}, func(id string) string { return "order:" + id })
	batch := []orders.Loaded{{Order: sdk.Order{ID: "1", Channel: "c"}, Ref: orders.Ref{ID: "1", Channel: "c"}}}

	first := make(chan dispatch.Outcome)
	go func() {
		out, err := d.Dispatch(context.Background(), batch)
		if err != nil {
			t.Error(err)
		}
		first <- out
	}()
	<-old.started
	swapped := make(chan struct{})
	go func() {
		d.SetTargets([]dispatch.Target{target(&gated{name: "new"})})
		close(swapped)
	}()
	select {
	case <-swapped:
		t.Fatal("SetTargets returned while a batch was in flight on the old targets")
	case <-time.After(50 * time.Millisecond):
	}
	close(old.release)
	if got := plugins(<-first); len(got) != 1 || got[0] != "old" {
		t.Errorf("batch in flight wrote for %q, want [old]", got)
	}
	<-swapped
	out, err := d.Dispatch(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if got := plugins(out); len(got) != 1 || got[0] != "new" {
		t.Errorf("batch after the swap wrote for %q, want [new]", got)
	}
	if got := d.Targets(); len(got) != 1 || got[0].Processor.Name() != "new" {
		t.Errorf("Targets after the swap = %v", got)
	}
}
