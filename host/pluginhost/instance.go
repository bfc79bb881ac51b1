package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/sdk"
)

// ErrDisabled is returned by Process once a plugin crashed more often than
// its restart limit allows.
var ErrDisabled = errors.New("plugin disabled after repeated crashes")

// BatchError is a batch a plugin could not process after all attempts.
type BatchError struct {
	Plugin   string
	Attempts int
	Err      error
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("plugin %s failed the batch after %d attempts: %v", e.Plugin, e.Attempts, e.Err)
}

func (e *BatchError) Unwrap() error { return e.Err }

// Instance is a running plugin. Process is safe for concurrent use, but the
// host calls it one batch at a time.
type Instance struct {
	cfg       config.Plugin
	desc      sdk.Description
	values    map[string]any
	logger    hclog.Logger
	metrics   *metrics.Metrics
	socketDir string

	mu       sync.Mutex
	proc     *process
	crashes  []time.Time
	disabled bool
	// up mirrors the eventhost_plugin_up gauge for readiness checks, which
	// must not wait for mu (held for a whole batch).
	up      atomic.Bool
	backoff *backoff.ExponentialBackOff
}

// Launch starts the plugin of cfg and configures it. Errors name the plugin;
// config problems are *ConfigError with diagnostics.
func Launch(ctx context.Context, cfg config.Plugin, logger hclog.Logger, m *metrics.Metrics, socketDir string) (*Instance, error) {
	logger = logger.Named(cfg.Name)
	p, err := prepare(ctx, cfg, logger, socketDir)
	if err != nil {
		return nil, err
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	b.MaxElapsedTime = 0
	b.Reset() // the constructor already fixed the first interval at its default
	inst := &Instance{
		cfg: cfg, desc: p.Description, values: p.Values, logger: logger, metrics: m,
		socketDir: socketDir, proc: p.proc, backoff: b,
	}
	m.PluginUp.WithLabelValues(cfg.Name).Set(1)
	inst.up.Store(true)
	logger.Info("plugin started", "version", p.Description.Version, "path", cfg.Path, "keys", p.Description.Keys)
	return inst, nil
}

// Name is the plugin's name.
func (in *Instance) Name() string { return in.cfg.Name }

// Config is the plugin's block.
func (in *Instance) Config() config.Plugin { return in.cfg }

// Description is what the plugin said about itself at launch.
func (in *Instance) Description() sdk.Description { return in.desc }

// Values is the plugin's config block as decoded at launch and accepted by
// the plugin. The map must not be modified.
func (in *Instance) Values() map[string]any { return in.values }

// Up reports whether the plugin's process is running and answering; false
// while it is being relaunched, once disabled, and after Stop. It does not
// wait for a batch in flight.
func (in *Instance) Up() bool { return in.up.Load() }

// Disabled reports whether the plugin crashed too often and was given up on.
func (in *Instance) Disabled() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.disabled
}

// Process sends orders to the plugin as one batch. A crash or a timeout
// relaunches the plugin (with backoff) and retries the batch, up to the
// block's max_attempts; then it returns a *BatchError. A disabled plugin
// returns ErrDisabled at once.
func (in *Instance) Process(ctx context.Context, orders []sdk.Order) ([]sdk.Result, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	var lastErr error
	for attempt := 1; attempt <= in.cfg.MaxAttempts; attempt++ {
		if in.disabled && attempt == 1 {
			return nil, ErrDisabled
		}
		if in.disabled {
			// This batch's crashes tipped it over: say how often it was tried.
			return nil, &BatchError{Plugin: in.cfg.Name, Attempts: attempt - 1, Err: fmt.Errorf("%w (last error: %v)", ErrDisabled, lastErr)}
		}
		if in.proc == nil {
			if err := in.relaunch(ctx); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				lastErr = err
				continue
			}
		}
		results, err := in.call(ctx, orders)
		if err == nil {
			in.backoff.Reset()
			return results, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		lastErr = err
		in.logger.Error("batch failed; restarting plugin", "attempt", attempt, "orders", len(orders), "error", err)
		in.crashed()
	}
	return nil, &BatchError{Plugin: in.cfg.Name, Attempts: in.cfg.MaxAttempts, Err: lastErr}
}

func (in *Instance) call(ctx context.Context, orders []sdk.Order) ([]sdk.Result, error) {
	callCtx, cancel := context.WithTimeout(ctx, in.cfg.Timeout)
	defer cancel()
	start := time.Now()
	results, err := in.proc.rpc.Process(callCtx, orders)
	in.metrics.PluginRPCSeconds.WithLabelValues(in.cfg.Name).Observe(time.Since(start).Seconds())
	if err == nil {
		return results, nil
	}
	kind := "protocol"
	switch {
	// The plugin's side may see the deadline first and cancel the stream,
	// so DeadlineExceeded can arrive before callCtx's own timer fires.
	case (callCtx.Err() != nil || status.Code(err) == codes.DeadlineExceeded) && ctx.Err() == nil:
		kind = "timeout"
		err = fmt.Errorf("no answer within %s: %w", in.cfg.Timeout, err)
	case in.proc.client.Exited() || status.Code(err) == codes.Unavailable:
		kind = "crash"
	}
	in.metrics.PluginErrors.WithLabelValues(in.cfg.Name, kind).Inc()
	return nil, err
}

// crashed kills the current process (a hung one too) and counts the crash,
// disabling the plugin when it crashed too often.
func (in *Instance) crashed() {
	in.proc.kill()
	in.proc = nil
	in.metrics.PluginUp.WithLabelValues(in.cfg.Name).Set(0)
	in.up.Store(false)
	now := time.Now()
	recent := in.crashes[:0]
	for _, t := range in.crashes {
		if now.Sub(t) < in.cfg.RestartWindow {
			recent = append(recent, t)
		}
	}
	in.crashes = append(recent, now)
	if len(in.crashes) > in.cfg.RestartLimit {
		in.disabled = true
		in.logger.Error("PLUGIN DISABLED: it crashed too often; its orders go to the dead-letter stream until it is fixed and the host reloaded or restarted",
			"crashes", len(in.crashes), "window", in.cfg.RestartWindow)
	}
}

func (in *Instance) relaunch(ctx context.Context) error {
	wait := in.backoff.NextBackOff()
	in.logger.Warn("relaunching plugin", "after", wait)
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		return ctx.Err()
	}
	in.metrics.PluginRestarts.WithLabelValues(in.cfg.Name).Inc()
	proc, err := start(ctx, in.cfg, in.logger, in.socketDir)
	if err == nil {
		// Describe again: it also tells the client which encoding this
		// process reads.
		if _, err = proc.rpc.Describe(ctx); err != nil {
			proc.kill()
		}
	}
	if err == nil {
		err = configure(ctx, proc, in.cfg, in.values)
		if err != nil {
			proc.kill()
		}
	}
	if err != nil {
		in.logger.Error("relaunch failed", "error", err)
		in.crashed()
		return err
	}
	in.proc = proc
	in.metrics.PluginUp.WithLabelValues(in.cfg.Name).Set(1)
	in.up.Store(true)
	in.logger.Info("plugin restarted")
	return nil
}

// Stop kills the plugin process. It waits for a batch in flight to finish
// first, and is safe to call twice.
func (in *Instance) Stop() { in.stop(true) }

// Retire is Stop for an instance that a new instance of the same plugin
// replaced (a reload): the plugin's up gauge is the new one's to set.
func (in *Instance) Retire() { in.stop(false) }

func (in *Instance) stop(gauge bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.proc != nil {
		in.proc.kill()
		in.proc = nil
		if gauge {
			in.metrics.PluginUp.WithLabelValues(in.cfg.Name).Set(0)
			in.up.Store(false)
		}
		in.logger.Info("plugin stopped")
	}
}
