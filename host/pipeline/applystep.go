package pipeline

import (
	"context"
	"strings"
	"time"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/orders"
)

// finish applies a prepared batch, then queues its retries.
func (p *Pipeline) finish(ctx context.Context, pb prepared) error {
	if err := p.apply(ctx, pb.batch); err != nil {
		return err
	}
	// Queued only once the rest of the order is applied: a retry must not
	// race the first try's apply.
	now := time.Now()
	for _, r := range pb.later {
		p.retries.push(now.Add(p.backoff(r.Attempt)), r)
	}
	for _, r := range pb.wait {
		p.retries.push(now.Add(p.backoff(r.HashWaits)), r)
	}
	p.observeLatency(pb.refs, now)
	p.metrics.BatchSeconds.Observe(time.Since(pb.start).Seconds())
	p.outcomes.batchesFinished.Add(1)
	return nil
}

// settle finishes r in b: its stream entry is acknowledged and the dead
// letter it replays deleted, atomically with its effects.
func settle(b *apply.Batch, r orders.Ref) {
	if r.StreamID != "" {
		b.Acks = append(b.Acks, apply.Ack{Stream: r.Stream, ID: r.StreamID})
	}
	if r.Replays != "" {
		b.Replayed = append(b.Replayed, r.Replays)
	}
}

func (p *Pipeline) observeLatency(refs []orders.Ref, now time.Time) {
	for _, r := range refs {
		if !r.Received.IsZero() {
			p.metrics.OrderSeconds.Observe(now.Sub(r.Received).Seconds())
		}
	}
}

// apply writes b whole, retrying while Redis cannot take it. Writes that
// cannot land (a key of another type, a value Redis would refuse, an order
// deleted since it was loaded) come back as dead letters written in the
// same atomic step as the rest.
func (p *Pipeline) apply(ctx context.Context, b apply.Batch) error {
	var res apply.Result
	err := p.retry(ctx, "apply", func() error {
		var err error
		res, err = p.applier.Apply(ctx, b)
		return err
	})
	if err != nil {
		return err
	}
	processed := map[[2]string]int{}
	duplicates := map[string]int{}
	for i, st := range res.Statuses {
		w := b.Writes[i]
		switch st {
		case apply.Applied:
			processed[[2]string{w.Channel, w.Plugin}]++
		case apply.AlreadyDone:
			duplicates[w.Plugin]++
		}
	}
	for k, n := range processed {
		p.metrics.OrdersProcessed.WithLabelValues(k[0], k[1]).Add(float64(n))
		p.outcomes.addApplied(k[1], n)
	}
	for plugin, n := range duplicates {
		p.metrics.OrdersDuplicate.WithLabelValues(plugin).Add(float64(n))
		p.outcomes.alreadyDone.Add(int64(n))
	}
	for _, d := range res.DeadLetters {
		p.countDead(d)
	}
	return nil
}

func (p *Pipeline) countDead(d deadletter.Entry) {
	reason := d.Reason
	if i := strings.IndexAny(reason, ":"); i > 0 {
		reason = reason[:i]
	}
	if d.Plugin == "" {
		reason = "bad order"
	}
	p.metrics.OrdersDeadLettered.WithLabelValues(d.Channel, d.Plugin, reason).Inc()
	p.outcomes.deadLettered.Add(1)
	p.logger.Warn("order dead-lettered", "id", deadletter.Truncate(d.OrderID, 128), "plugin", d.Plugin, "reason", d.Reason)
}
