package pipeline

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/eventhost/eventhost/host/intake"
	"github.com/eventhost/eventhost/host/orders"
)

// gather is Run's first stage: it fills batches, loads and dispatches them,
// and hands them to the apply stage on ready. It returns when there is
// nothing left to do, or when ctx ends or the apply stage stopped.
func (p *Pipeline) gather(ctx context.Context, in inputs, ready chan<- prepared, settled, applied <-chan struct{}, inflight *atomic.Int64) error {
	fill := time.NewTimer(time.Hour)
	fill.Stop()
	wake := time.NewTimer(time.Hour)
	wake.Stop()
	var batch []orders.Ref // kept across idle wake-ups; handed on with its batch
	for {
		if batch == nil {
			batch = p.getBatch()
		}
		batch = p.retries.popDue(time.Now(), batch[:0], p.batchMax())
		if len(batch) == 0 {
			// inflight first: the apply stage queues a batch's retries
			// before it counts the batch out, so 0 here means the queue
			// read next holds every retry there will be.
			if in.closed() && inflight.Load() == 0 && p.retries.len() == 0 {
				return nil
			}
			var wakeC <-chan time.Time
			if due, ok := p.retries.next(); ok {
				wake.Reset(time.Until(due))
				wakeC = wake.C
			}
			select {
			case <-in.liveReady():
				wake.Stop()
				if batch, in.live = p.takeLive(batch, in.live); in.live == nil {
					if n := p.retries.len(); n > 0 {
						p.logger.Info("intake closed; finishing retries", "orders", n)
					}
				}
				if len(batch) == 0 {
					continue // closed, or a stale token
				}
			case ref, ok := <-in.found:
				wake.Stop()
				if !ok {
					in.found = nil
					continue
				}
				batch = append(batch, ref)
			case <-wakeC:
				continue
			case <-settled:
				wake.Stop()
				continue
			case <-applied:
				return nil // Run reports the apply stage's error
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		batch, in = p.fill(batch, in, fill)
		pb, err := p.prepare(ctx, batch)
		if err != nil {
			return err
		}
		inflight.Add(1)
		batch = nil // the apply stage returns it to the pool
		select {
		case ready <- pb:
		case <-applied:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// inputs is where ids come from: live, received ones, and found ones (a
// catch-up), which only fill the room live ones leave. A nil one is closed
// and drained.
type inputs struct {
	live  *intake.Queue
	found <-chan orders.Ref
}

func (in inputs) closed() bool { return in.live == nil && in.found == nil }

// liveReady is live's Ready, or nil (never ready) once live is drained.
func (in inputs) liveReady() <-chan struct{} {
	if in.live == nil {
		return nil
	}
	return in.live.Ready()
}

// fill adds to batch the ids already waiting, live ones first, up to
// MaxOrders, without waiting for more; with MaxWait set, it then waits up
// to MaxWait for more live ids (a host that prefers fewer, larger batches
// to the lowest latency). An intake found closed is returned nil.
func (p *Pipeline) fill(batch []orders.Ref, in inputs, timer *time.Timer) ([]orders.Ref, inputs) {
	batch, in.live = p.takeLive(batch, in.live)
	batch, in.found = p.take(batch, in.found)
	if p.MaxWait <= 0 || len(batch) >= p.batchMax() || in.live == nil {
		return batch, in
	}
	timer.Reset(p.MaxWait)
	defer timer.Stop()
	for len(batch) < p.batchMax() && in.live != nil {
		select {
		case <-in.live.Ready():
			batch, in.live = p.takeLive(batch, in.live)
		case <-timer.C:
			return batch, in
		}
	}
	return batch, in
}

// takeLive adds the ids waiting in live to batch, up to MaxOrders; it
// returns nil for live once live is closed and drained.
func (p *Pipeline) takeLive(batch []orders.Ref, live *intake.Queue) ([]orders.Ref, *intake.Queue) {
	if live == nil {
		return batch, nil
	}
	batch, closed := live.Take(batch, p.batchMax())
	if closed {
		return batch, nil
	}
	return batch, live
}

// take adds the ids waiting in ch to batch, up to MaxOrders; it returns
// nil for ch once ch is closed.
func (p *Pipeline) take(batch []orders.Ref, ch <-chan orders.Ref) ([]orders.Ref, <-chan orders.Ref) {
	for len(batch) < p.batchMax() && ch != nil {
		select {
		case ref, ok := <-ch:
			if !ok {
				return batch, nil
			}
			batch = append(batch, ref)
		default:
			return batch, ch
		}
	}
	return batch, ch
}

// getBatch returns an empty batch slice. Slices are reused: a fresh one
// per batch was the host's biggest allocation (a Ref is ~140 bytes).
func (p *Pipeline) getBatch() []orders.Ref {
	select {
	case b := <-p.spareBatches:
		return b[:0]
	default:
		return make([]orders.Ref, 0, p.batchMax())
	}
}

// putBatch takes back a batch slice once nothing refers to its refs.
func (p *Pipeline) putBatch(refs []orders.Ref) {
	if cap(refs) < p.batchMax() {
		return
	}
	clear(refs) // drop the strings the refs hold for the GC
	select {
	case p.spareBatches <- refs:
	default:
	}
}
