// Package pipeline moves order ids through the host: it gathers them into
// batches, loads the batch (one pipelined round trip), dispatches it to the
// plugins and applies the outcome in one atomic step, retrying Redis failures
// so that an outage delays orders instead of losing them.
package pipeline

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-hclog"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/dispatch"
	"github.com/eventhost/eventhost/host/intake"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/rediserr"
)

// Pipeline processes batches of order ids.
type Pipeline struct {
	loader     *orders.Loader
	dispatcher *dispatch.Dispatcher
	applier    *apply.Applier
	metrics    *metrics.Metrics
	logger     hclog.Logger
	maxOrders  int
	maxWait    time.Duration
	// maxAttempts is each plugin's max_attempts: how often an order is
	// tried on it after transient errors before it is dead-lettered. A
	// reload sets it while batches run, hence the lock.
	attemptsMu  sync.Mutex
	maxAttempts map[string]int
	// RetryBackoff is the wait before an order's first retry on a plugin;
	// it doubles with each further attempt, up to RetryBackoffMax.
	RetryBackoff, RetryBackoffMax time.Duration
	// MissingHashWait is how long a stream entry whose order hash is not
	// stored yet is held (pending, tried again with RetryBackoff) before
	// it is dead-lettered, without marking the order, for a replay.
	MissingHashWait time.Duration

	retries retryQueue
	// spareBatches are batch slices to reuse, see getBatch. Not a
	// sync.Pool: the apply stage returns them, another goroutine on
	// another P than the one gathering, and a pool's private slot on that
	// P is not found from the other; each GC empties a pool too.
	spareBatches chan []orders.Ref
	// loaded is prepare's slice of loaded orders, kept between batches
	// (prepare runs on the gathering goroutine alone).
	loaded []orders.Loaded
	pause  pauseState

	outcomes Outcomes // see outcome.go
}

// Paused returns why the pipeline is paused, and since when: Redis refused
// its last try. "" when it runs.
func (p *Pipeline) Paused() (reason string, since time.Time) { return p.pause.get() }

// New wires a pipeline. A batch holds at most maxOrders ids. It is sent as
// soon as the pipeline can take it, with the ids that arrived meanwhile;
// maxWait > 0 makes it wait up to that long for more ids first.
func New(l *orders.Loader, d *dispatch.Dispatcher, a *apply.Applier, m *metrics.Metrics, logger hclog.Logger, maxOrders int, maxWait time.Duration) *Pipeline {
	return &Pipeline{
		loader: l, dispatcher: d, applier: a, metrics: m, logger: logger, maxOrders: maxOrders, maxWait: maxWait,
		maxAttempts: map[string]int{}, RetryBackoff: 100 * time.Millisecond, RetryBackoffMax: 5 * time.Second,
		MissingHashWait: 30 * time.Second,
		spareBatches:    make(chan []orders.Ref, 3), // one applied, one prepared, one gathered
	}
}

// SetMaxAttempts sets how often plugin gets to try one order (at least once).
// It may be called while Run runs.
func (p *Pipeline) SetMaxAttempts(plugin string, n int) {
	p.attemptsMu.Lock()
	defer p.attemptsMu.Unlock()
	p.maxAttempts[plugin] = max(n, 1)
}

// Run batches ids from in, and orders waiting for a retry, until in is
// closed and both are drained, so ids already received are finished on
// shutdown. ctx is the hard stop: when it ends, Run returns at once,
// abandoning the batch in flight (its effects were either applied
// atomically or not at all) and the retries not yet due (catch-up or the
// stream's pending list brings them back).
//
// At most two batches are in flight: while one is applied, the next is
// loaded and dispatched, so Redis' script time and the plugins' RPC time
// overlap. A batch is cut as soon as the stage before the plugins is free,
// with every id that arrived meanwhile (see gather), so ids wait for work
// ahead of them, never for a timer, and batches grow by themselves while
// the stages are busy. Batches are applied in the order they were
// gathered; an order in both is applied once, by the done marker the
// script checks.
//
// Run reads in ahead of the pipeline by at most a batch (maxOrders ids).
func (p *Pipeline) Run(ctx context.Context, in <-chan orders.Ref) error {
	live := intake.NewQueue(p.maxOrders)
	defer live.Close() // ends the copying below if the pipeline failed
	go func() {
		defer live.Close()
		for r := range in {
			if live.Put(ctx, r) != nil {
				return // ctx ended: RunIntake returns too
			}
		}
	}()
	return p.RunIntake(ctx, live, nil)
}

// RunIntake is Run with the received ids in live, the host's intake
// buffer, and a second intake, found, for orders found rather than
// received (a catch-up): a batch takes every waiting id of live first and
// fills what room is left from found, so a live order never waits behind a
// catch-up's backlog. It returns once live is closed and drained and found
// is closed and drained; a nil live or found counts as closed.
func (p *Pipeline) RunIntake(ctx context.Context, live *intake.Queue, found <-chan orders.Ref) error {
	// Unbuffered: a prepared batch waiting for the applier holds the next
	// one back, so ids arriving meanwhile join that next batch instead of
	// queuing as a third, smaller one behind both.
	ready := make(chan prepared)
	settled := make(chan struct{}, 1) // a batch was applied: retries may be due
	// applied is closed when the apply stage ends, with applyErr set: on
	// ctx ending, or once ready is closed and drained.
	applied := make(chan struct{})
	var applyErr error
	// inflight counts batches sent to the applier and not yet finished
	// (their retries queued): Run may only end when it is 0.
	var inflight atomic.Int64
	go func() {
		defer close(applied)
		for pb := range ready {
			err := p.finish(ctx, pb)
			if err == nil {
				pb.dispatched.Release() // applied: nothing reads its writes any more
			}
			p.putBatch(pb.refs)
			inflight.Add(-1)
			if err != nil {
				applyErr = err
				return
			}
			select {
			case settled <- struct{}{}:
			default:
			}
		}
	}()
	err := p.gather(ctx, inputs{live: live, found: found}, ready, settled, applied, &inflight)
	close(ready)
	<-applied
	if err == nil {
		err = applyErr
	}
	return err
}

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
		batch = p.retries.popDue(time.Now(), batch[:0], p.maxOrders)
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
// maxOrders, without waiting for more; with maxWait set, it then waits up
// to maxWait for more live ids (a host that prefers fewer, larger batches
// to the lowest latency). An intake found closed is returned nil.
func (p *Pipeline) fill(batch []orders.Ref, in inputs, timer *time.Timer) ([]orders.Ref, inputs) {
	batch, in.live = p.takeLive(batch, in.live)
	batch, in.found = p.take(batch, in.found)
	if p.maxWait <= 0 || len(batch) >= p.maxOrders || in.live == nil {
		return batch, in
	}
	timer.Reset(p.maxWait)
	defer timer.Stop()
	for len(batch) < p.maxOrders && in.live != nil {
		select {
		case <-in.live.Ready():
			batch, in.live = p.takeLive(batch, in.live)
		case <-timer.C:
			return batch, in
		}
	}
	return batch, in
}

// takeLive adds the ids waiting in live to batch, up to maxOrders; it
// returns nil for live once live is closed and drained.
func (p *Pipeline) takeLive(batch []orders.Ref, live *intake.Queue) ([]orders.Ref, *intake.Queue) {
	if live == nil {
		return batch, nil
	}
	batch, closed := live.Take(batch, p.maxOrders)
	if closed {
		return batch, nil
	}
	return batch, live
}

// take adds the ids waiting in ch to batch, up to maxOrders; it returns
// nil for ch once ch is closed.
func (p *Pipeline) take(batch []orders.Ref, ch <-chan orders.Ref) ([]orders.Ref, <-chan orders.Ref) {
	for len(batch) < p.maxOrders && ch != nil {
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

// getBatch returns an empty batch slice. Slices are reused: a fresh one
// per batch was the host's biggest allocation (a Ref is ~140 bytes).
func (p *Pipeline) getBatch() []orders.Ref {
	select {
	case b := <-p.spareBatches:
		return b[:0]
	default:
		return make([]orders.Ref, 0, p.maxOrders)
	}
}

// putBatch takes back a batch slice once nothing refers to its refs.
func (p *Pipeline) putBatch(refs []orders.Ref) {
	if cap(refs) < p.maxOrders {
		return
	}
	clear(refs) // drop the strings the refs hold for the GC
	select {
	case p.spareBatches <- refs:
	default:
	}
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

// retry runs op until it succeeds or ctx ends. Whatever Redis answers, the
// host never gives up on a batch: Redis unreachable, out of memory, not
// persisting, read-only or refusing our user pauses the pipeline (not ready,
// with the reason) while op is retried with backoff, and it resumes by
// itself once Redis takes the batch.
func (p *Pipeline) retry(ctx context.Context, what string, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 20 * time.Millisecond
	b.MaxInterval = 2 * time.Second
	b.MaxElapsedTime = 0
	b.Reset() // the constructor already fixed the first interval at its default
	for {
		err := op()
		class, reason := rediserr.Classify(err)
		switch {
		case class == rediserr.Fine:
			p.pause.resume(p.logger, p.metrics)
			return nil
		case class == rediserr.Stopped || ctx.Err() != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		p.metrics.RedisErrors.WithLabelValues(what).Inc()
		p.outcomes.redisRetries.Add(1)
		p.pause.pause(p.logger, p.metrics, reason, err)
		wait := b.NextBackOff()
		p.logger.Error("redis refused the batch; paused, retrying", "op", what, "reason", reason, "error", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
