package catchup

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
)

// Plugin is a plugin to catch up and the channels it listens on.
type Plugin struct {
	Name     string
	Channels []string
}

// Runner runs a catch-up each time it is triggered: on start and after
// every reconnect. Triggers that arrive during a run coalesce into one more.
type Runner struct {
	scanner  *Scanner
	registry *Registry
	routes   Routes
	logger   hclog.Logger
	metrics  *metrics.Metrics
	trigger  chan struct{}
	// RetryAfter is the wait before a failed run is tried again.
	RetryAfter time.Duration
	// OnRegistered, when set, is called in each run once every plugin is
	// registered (the history of a new one marked), before the scan: from
	// then on every order is counted, live or found by this scan.
	OnRegistered func()
	// OnDone, when set, is called after each successful run.
	OnDone func()

	// leftOut holds the plugins already reported as left out of catch-up.
	mu      sync.Mutex
	leftOut map[string]bool
}

// NewRunner returns a runner that tells the channel of each order it finds
// by routes.
func NewRunner(s *Scanner, r *Registry, routes Routes, logger hclog.Logger, m *metrics.Metrics) *Runner {
	return &Runner{scanner: s, registry: r, routes: routes, logger: logger, metrics: m,
		trigger: make(chan struct{}, 1), RetryAfter: time.Second, leftOut: map[string]bool{}}
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
func (r *Runner) Run(ctx context.Context, plugins func() []Plugin, emit func(context.Context, orders.Ref) error) {
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
// order one of them has not finished to emit, for the plugins among them
// that listen on the order's channel (see Routes). A plugin a scan cannot
// serve (it listens on some of the source's channels only, and the config
// tells none of them by id prefix) is left out: it counts what arrives live.
func (r *Runner) Once(ctx context.Context, plugins []Plugin, emit func(context.Context, orders.Ref) error) error {
	start := time.Now()
	wants := make([]Want, 0, len(plugins))
	channels := make(map[string][]string, len(plugins))
	names := make([]string, len(plugins))
	for i, p := range plugins {
		names[i] = p.Name
	}
	regs, err := r.registry.EnableAll(ctx, names)
	if err != nil {
		return err
	}
	if r.OnRegistered != nil {
		r.OnRegistered()
	}
	r.metrics.CatchUpRunning.Set(1)
	defer r.metrics.CatchUpRunning.Set(0)
	for _, p := range plugins {
		reg := regs[p.Name]
		switch {
		case reg.Fresh:
			r.logger.Info("plugin enabled for the first time: orders already stored are history for it (run eventhost backfill to count them)", "plugin", p.Name)
		case reg.Voided:
			r.logger.Warn("the marking of this plugin's history was interrupted; its markers are void, so catch-up counts the orders stored before it as new (an order published meanwhile would otherwise be lost)", "plugin", p.Name)
		}
		if !r.routes.Scannable(p.Channels) {
			r.reportLeftOut(p)
			continue
		}
		wants = append(wants, Want{Plugin: p.Name, Token: reg.Token})
		channels[p.Name] = p.Channels
	}
	offChannel := 0
	st, err := r.scanner.Scan(ctx, wants, func(found []Unfinished) error {
		for _, u := range found {
			ch := r.routes.ChannelOf(u.ID)
			only := make([]string, 0, len(u.Plugins))
			for _, p := range u.Plugins {
				if r.routes.May(channels[p], ch) {
					only = append(only, p)
				}
			}
			if len(only) == 0 {
				offChannel++
				continue
			}
			// The channel is "" when it cannot be told: a dead letter
			// then says so rather than name a channel at random.
			if err := emit(ctx, orders.Ref{ID: u.ID, Channel: ch, Only: only}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	took := time.Since(start)
	r.metrics.CatchUpRuns.WithLabelValues("done").Inc()
	r.metrics.CatchUpOrders.Add(float64(st.Unfinished - offChannel))
	r.metrics.CatchUpSeconds.Observe(took.Seconds())
	r.logger.Info("catch-up done", "orders_scanned", st.Keys, "unfinished", st.Unfinished-offChannel,
		"off_channel", offChannel, "calls", st.Calls, "longest_call", st.Longest, "took", took.Round(time.Millisecond))
	return nil
}

func (r *Runner) reportLeftOut(p Plugin) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leftOut[p.Name] {
		return
	}
	r.leftOut[p.Name] = true
	r.logger.Warn("plugin left out of catch-up: it listens on some of the source's channels only, and a stored order does not say where it was published; orders it misses while the host is not subscribed stay uncounted for it (map channels to id prefixes with source { id_prefixes } to include it)",
		"plugin", p.Name, "channels", p.Channels, "source_channels", r.routes.source)
}
