// Package pipeline moves order ids through the host: it gathers them into
// batches, loads the batch (one pipelined round trip), dispatches it to the
// plugins and applies the outcome in one atomic step, retrying Redis failures
// so that an outage delays orders instead of losing them.
package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/dispatch"
	"github.com/eventhost/eventhost/host/intake"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
)

// Pipeline processes batches of order ids. Its exported fields are
// settings, which New sets to their defaults (MaxOrders and MaxWait to
// config's); change them before Run, which reads them without a lock.
type Pipeline struct {
	loader     *orders.Loader
	dispatcher *dispatch.Dispatcher
	applier    *apply.Applier
	metrics    *metrics.Metrics
	logger     hclog.Logger
	// maxAttempts is each plugin's max_attempts: how often an order is
	// tried on it after transient errors before it is dead-lettered. A
	// reload sets it while batches run, hence the lock.
	attemptsMu  sync.Mutex
	maxAttempts map[string]int

	// MaxOrders is the most ids a batch holds (max_orders). Below 1 counts
	// as 1: a batch of 0 would never be cut.
	MaxOrders int
	// MaxWait > 0 makes a batch wait up to that long for more ids
	// (max_wait). At 0, the default, a batch goes out as soon as the
	// pipeline can take it, with the ids that arrived meanwhile.
	MaxWait time.Duration
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

// New wires a pipeline, with the exported fields at their defaults.
func New(l *orders.Loader, d *dispatch.Dispatcher, a *apply.Applier, m *metrics.Metrics, logger hclog.Logger) *Pipeline {
	return &Pipeline{
		loader: l, dispatcher: d, applier: a, metrics: m, logger: logger, maxAttempts: map[string]int{},
		MaxOrders: config.DefaultMaxOrders, MaxWait: config.DefaultMaxWait,
		RetryBackoff: 100 * time.Millisecond, RetryBackoffMax: 5 * time.Second, MissingHashWait: 30 * time.Second,
		spareBatches: make(chan []orders.Ref, 3), // one applied, one prepared, one gathered
	}
}

// batchMax is MaxOrders, at least 1.
func (p *Pipeline) batchMax() int { return max(p.MaxOrders, 1) }

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
// Run reads in ahead of the pipeline by at most a batch (MaxOrders ids).
func (p *Pipeline) Run(ctx context.Context, in <-chan orders.Ref) error {
	live := intake.NewQueue(p.batchMax())
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
