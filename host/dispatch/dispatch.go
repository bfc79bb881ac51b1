// Package dispatch sends a batch of orders to every plugin that wants them,
// all plugins in parallel, and turns their answers into the writes and dead
// letters of one atomic apply.
package dispatch

import (
	"context"
	"errors"
	"sync"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/pluginhost"
	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/sdk"
)

// Processor runs one plugin over a batch, returning one result per order.
// *pluginhost.Instance is the real one; Local runs a plugin in process.
type Processor interface {
	Name() string
	Process(ctx context.Context, orders []sdk.Order) ([]sdk.Result, error)
}

var _ Processor = (*pluginhost.Instance)(nil)

// Target is a plugin with the channels it listens on and what it may write.
type Target struct {
	Processor Processor
	Channels  []string
	Policy    *policy.Policy
}

func (t Target) wants(channel string) bool {
	for _, c := range t.Channels {
		if c == channel {
			return true
		}
	}
	return false
}

// Local runs an sdk.Plugin in the host's own process, through the same batch
// loop as the gRPC adapter. It is the reference the benchmarks compare the
// plugin boundary against, and handy for dry runs.
type Local struct {
	Plugin sdk.Plugin
}

// Name implements Processor.
func (l Local) Name() string { return l.Plugin.Describe().Name }

// Process implements Processor.
func (l Local) Process(_ context.Context, orders []sdk.Order) ([]sdk.Result, error) {
	return sdk.ProcessBatch(l.Plugin, orders), nil
}

// Dispatcher fans batches out to its targets.
type Dispatcher struct {
	targets []Target
	keyOf   func(id string) string
}

// New returns a Dispatcher; keyOf names an order's hash.
func New(targets []Target, keyOf func(id string) string) *Dispatcher {
	return &Dispatcher{targets: targets, keyOf: keyOf}
}

// Dispatch runs every target over the loaded orders it has not yet applied
// and returns what to write, and per plugin how many orders it skipped as
// already applied (a duplicate delivery). Writes are ordered by order, then by target, so
// each key sees its increments in the order the ids arrived. Every (order,
// plugin) pair ends up either as a write or as a dead letter. err is only
// ctx ending.
func (d *Dispatcher) Dispatch(ctx context.Context, loaded []orders.Loaded) (apply.Batch, map[string]int, error) {
	type answer struct {
		idx     []int // positions in loaded
		results []sdk.Result
		err     error
	}
	answers := make([]answer, len(d.targets))
	skipped := map[string]int{}
	var wg sync.WaitGroup
	for ti, t := range d.targets {
		var idx []int
		var batch []sdk.Order
		for i, l := range loaded {
			if !t.wants(l.Order.Channel) {
				continue
			}
			if l.Done[t.Processor.Name()] {
				skipped[t.Processor.Name()]++
				continue
			}
			idx = append(idx, i)
			batch = append(batch, l.Order)
		}
		answers[ti].idx = idx
		if len(batch) == 0 {
			continue
		}
		wg.Add(1)
		go func(ti int, t Target, batch []sdk.Order) {
			defer wg.Done()
			answers[ti].results, answers[ti].err = t.Processor.Process(ctx, batch)
		}(ti, t, batch)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return apply.Batch{}, nil, err
	}

	// perOrder[i][ti] is target ti's write for loaded[i], if any.
	perOrder := make([][]*apply.Write, len(loaded))
	var b apply.Batch
	for ti, a := range answers {
		name := d.targets[ti].Processor.Name()
		for k, i := range a.idx {
			o := loaded[i].Order
			if a.err != nil {
				b.DeadLetters = append(b.DeadLetters, letter(o, name, a.err.Error(), attempts(a.err)))
				continue
			}
			r := a.results[k]
			if r.Err != "" {
				b.DeadLetters = append(b.DeadLetters, letter(o, name, "plugin error: "+r.Err, 1))
				continue
			}
			if err := d.targets[ti].Policy.CheckAll(r.Effects); err != nil {
				b.DeadLetters = append(b.DeadLetters, letter(o, name, "refused effect: "+err.Error(), 1))
				continue
			}
			if perOrder[i] == nil {
				perOrder[i] = make([]*apply.Write, len(d.targets))
			}
			perOrder[i][ti] = &apply.Write{
				OrderKey: d.keyOf(o.ID), Marker: orders.DoneField(name), Effects: r.Effects,
				Plugin: name, OrderID: o.ID, Channel: o.Channel,
			}
		}
	}
	for _, ws := range perOrder {
		for _, w := range ws {
			if w != nil {
				b.Writes = append(b.Writes, *w)
			}
		}
	}
	return b, skipped, nil
}

func letter(o sdk.Order, plugin, reason string, attempts int) deadletter.Entry {
	return deadletter.Entry{OrderID: o.ID, Channel: o.Channel, Plugin: plugin, Reason: reason, Attempts: attempts}
}

func attempts(err error) int {
	var be *pluginhost.BatchError
	if errors.As(err, &be) {
		return be.Attempts
	}
	return 1
}
