package pipeline

import (
	"context"
	"time"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/dispatch"
	"github.com/eventhost/eventhost/host/orders"
)

// prepared is a batch loaded and dispatched, waiting to be applied.
type prepared struct {
	refs  []orders.Ref
	batch apply.Batch
	// later are the refs to retry on some plugins once the batch is applied.
	later []orders.Ref
	// wait are stream refs whose order hash is not stored yet: tried
	// again after a backoff, until MissingHashWait has passed.
	wait  []orders.Ref
	start time.Time
	// dispatched holds the storage batch.Writes are in: released once the
	// batch is applied, for the dispatcher to reuse.
	dispatched dispatch.Outcome
}

// prepare loads and dispatches refs: everything but the apply.
func (p *Pipeline) prepare(ctx context.Context, refs []orders.Ref) (prepared, error) {
	pb := prepared{refs: refs, start: time.Now()}
	p.metrics.BatchSize.Observe(float64(len(refs)))
	p.outcomes.batchesStarted.Add(1)
	b := &pb.batch
	received := map[string]int{}
	poison := 0
	for _, r := range refs {
		if !r.Received.IsZero() { // not a catch-up, retry, backfill or replay
			received[r.Channel]++
		}
		if r.Poison != "" {
			poison++
			b.DeadLetters = append(b.DeadLetters, deadletter.Entry{
				OrderID: r.ID, Channel: r.Channel, Reason: r.Poison, Attempts: r.Attempt, OrderKey: p.loader.Key(r.ID),
			})
			settle(b, r)
		}
	}
	toLoad := refs // not copied unless some are poison (rare)
	if poison > 0 {
		toLoad = make([]orders.Ref, 0, len(refs)-poison)
		for _, r := range refs {
			if r.Poison == "" {
				toLoad = append(toLoad, r)
			}
		}
	}
	for ch, n := range received {
		p.metrics.OrdersReceived.WithLabelValues(ch).Add(float64(n))
	}
	// loaded is the pipeline's own slice, reused batch after batch: only
	// prepare uses it (dispatch failures and retries take copies).
	loaded := p.loaded[:0]
	defer func() { clear(loaded); p.loaded = loaded[:0] }()
	var rejected []orders.Rejected
	err := p.retry(ctx, "load", func() error {
		var err error
		loaded, rejected, err = p.loader.LoadAppend(ctx, toLoad, loaded[:0])
		return err
	})
	if err != nil {
		return pb, err
	}
	// Counted per batch, not per order: label lookups are the hot path here.
	perChannel := map[string]int{}
	for _, l := range loaded {
		perChannel[l.Order.Channel]++
	}
	for ch, n := range perChannel {
		p.metrics.OrdersLoaded.WithLabelValues(ch).Add(float64(n))
	}
	for _, r := range rejected {
		if r.NotStored && r.StreamID != "" && p.waited(r.HashWaits) < p.MissingHashWait {
			// A stream entry can arrive before its hash is stored; the
			// entry stays pending (unacknowledged) while it waits.
			w := r.Ref
			w.HashWaits++
			pb.wait = append(pb.wait, w)
			continue
		}
		p.logger.Warn("order rejected", "id", deadletter.Truncate(r.ID, 128), "channel", r.Channel, "reason", r.Reason)
		p.metrics.OrdersRejected.WithLabelValues(r.Channel).Inc()
		e := deadletter.Entry{OrderID: r.ID, Channel: r.Channel, Reason: r.Reason, Attempts: r.Attempt + 1}
		if !r.Missing {
			e.OrderKey = p.loader.Key(r.ID) // a malformed hash: catch-up must pass it over
		}
		b.DeadLetters = append(b.DeadLetters, e)
		settle(b, r.Ref)
	}

	out, err := p.dispatcher.Dispatch(ctx, loaded)
	if err != nil {
		return pb, err
	}
	pb.dispatched = out
	for plugin, n := range out.Skipped {
		p.metrics.OrdersDuplicate.WithLabelValues(plugin).Add(float64(n))
		p.outcomes.alreadyDone.Add(int64(n))
	}
	b.Writes = out.Writes
	// again[i] lists the plugins that get another try at loaded[i].
	again := map[int][]string{}
	for _, f := range out.Failures {
		l := f.Loaded
		if f.Transient && l.Ref.Attempt+1 < p.attemptsFor(f.Plugin) {
			again[f.Index] = append(again[f.Index], f.Plugin)
			p.metrics.OrdersRetried.WithLabelValues(f.Plugin).Inc()
			p.logger.Debug("plugin failed an order; retrying it on that plugin", "id", l.Order.ID, "plugin", f.Plugin, "attempt", l.Ref.Attempt+1, "error", f.Reason)
			continue
		}
		b.DeadLetters = append(b.DeadLetters, deadletter.Entry{
			OrderID: l.Order.ID, Channel: l.Order.Channel, Plugin: f.Plugin, Reason: f.Reason,
			Attempts: l.Ref.Attempt + f.Attempts, OrderKey: p.loader.Key(l.Order.ID),
		})
	}
	for i, l := range loaded {
		plugins, ok := again[i]
		if !ok {
			settle(b, l.Ref)
			continue
		}
		r := l.Ref
		r.Only, r.Attempt, r.Received = plugins, r.Attempt+1, time.Time{}
		pb.later = append(pb.later, r)
	}
	return pb, nil
}
func (p *Pipeline) attemptsFor(plugin string) int {
	p.attemptsMu.Lock()
	defer p.attemptsMu.Unlock()
	if n, ok := p.maxAttempts[plugin]; ok {
		return n
	}
	return 1
}

// waited is how long an order has been held back after n backoffs.
func (p *Pipeline) waited(n int) time.Duration {
	var d time.Duration
	for i := 1; i <= n; i++ {
		d += p.backoff(i)
	}
	return d
}

// backoff is the wait before try number attempt+1 of an order on a plugin.
func (p *Pipeline) backoff(attempt int) time.Duration {
	d := p.RetryBackoff
	for i := 1; i < attempt && d < p.RetryBackoffMax; i++ {
		d *= 2
	}
	return min(d, p.RetryBackoffMax)
}
