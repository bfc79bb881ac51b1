package catchup

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
)

// Runner runs a catch-up each time it is triggered: on start and after
// every reconnect. Triggers that arrive during a run coalesce into one more.
type Runner struct {
	scanner  *Scanner
	registry *Registry
	channel  string
	logger   hclog.Logger
	metrics  *metrics.Metrics
	trigger  chan struct{}
	// RetryAfter is the wait before a failed run is tried again.
	RetryAfter time.Duration
	// OnDone, when set, is called after each successful run.
	OnDone func()
}

// NewRunner returns a runner that hands unfinished orders on as arriving on
// channel: an order hash does not say where it was published.
func NewRunner(s *Scanner, r *Registry, channel string, logger hclog.Logger, m *metrics.Metrics) *Runner {
	return &Runner{scanner: s, registry: r, channel: channel, logger: logger, metrics: m,
		trigger: make(chan struct{}, 1), RetryAfter: time.Second}
}

// Trigger asks for a catch-up. It never blocks.
func (r *Runner) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Run waits for triggers until ctx ends. plugins names the plugins to catch
// up (it is asked on each run: the set changes on reload); emit hands an
// order on to the pipeline.
func (r *Runner) Run(ctx context.Context, plugins func() []string, emit func(context.Context, orders.Ref) error) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.trigger:
		}
		err := r.Once(ctx, plugins(), emit)
		if err == nil && r.OnDone != nil {
			r.OnDone()
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.metrics.CatchUpRuns.WithLabelValues("failed").Inc()
			r.logger.Error("catch-up failed; trying again", "error", err, "retry_in", r.RetryAfter)
			select {
			case <-time.After(r.RetryAfter):
				r.Trigger()
			case <-ctx.Done():
				return
			}
		}
	}
}

// Once registers plugins (marking history for new ones) and hands every
// order one of them has not finished to emit.
func (r *Runner) Once(ctx context.Context, plugins []string, emit func(context.Context, orders.Ref) error) error {
	start := time.Now()
	wants := make([]Want, 0, len(plugins))
	for _, p := range plugins {
		fresh, err := r.registry.Enable(ctx, p)
		if err != nil {
			return err
		}
		if fresh {
			r.logger.Info("plugin enabled for the first time: orders already stored are history for it (run eventhost backfill to count them)", "plugin", p)
		}
		wants = append(wants, Want{Plugin: p})
	}
	st, err := r.scanner.Scan(ctx, wants, func(found []Unfinished) error {
		for _, u := range found {
			if err := emit(ctx, orders.Ref{ID: u.ID, Channel: r.channel, Only: u.Plugins}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.metrics.CatchUpRuns.WithLabelValues("done").Inc()
	r.metrics.CatchUpOrders.Add(float64(st.Unfinished))
	r.metrics.CatchUpSeconds.Observe(time.Since(start).Seconds())
	r.logger.Info("catch-up done", "orders_scanned", st.Keys, "unfinished", st.Unfinished, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
