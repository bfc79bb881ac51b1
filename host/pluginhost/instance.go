package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"os"
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
	"github.com/eventhost/eventhost/sdk/client"
)

// ErrDisabled is returned by Process once a plugin failed more often than
// its restart limit allows.
var ErrDisabled = errors.New("plugin disabled after repeated crashes")

// Instance is a running plugin. Process is safe for concurrent use, but the
// host calls it one batch at a time.
type Instance struct {
	cfg       config.Plugin
	desc      sdk.Description
	values    map[string]any
	logger    hclog.Logger
	metrics   *metrics.Metrics
	socketDir string

	mu   sync.Mutex
	proc *process
	// crashes are the recent failures the plugin is to blame for: crashes
	// and hangs that no poison order explains, and failed relaunches.
	crashes []time.Time
	// convicted counts the orders in a row found to fail the plugin alone
	// (crash, hang or unreadable answer), with no successful call between
	// them: a few are poison orders, many mean the plugin fails on anything.
	convicted int
	disabled  bool
	// up mirrors the eventhost_plugin_up gauge for readiness checks, which
	// must not wait for mu (held for a whole batch).
	up      atomic.Bool
	backoff *backoff.ExponentialBackOff
	// errors and restarts count what Trouble reports.
	errors, restarts atomic.Int64
}

// Trouble is what went wrong with a plugin's process and what the host did
// about it. The watchdog reads it as a sign of life: a host riding out a
// crashing plugin is not wedged. Metrics count the same for people.
type Trouble struct {
	Errors   int64 // failed calls: crashes, timeouts, size and protocol failures
	Restarts int64 // relaunches tried
}

// Add returns t and u summed.
func (t Trouble) Add(u Trouble) Trouble {
	return Trouble{Errors: t.Errors + u.Errors, Restarts: t.Restarts + u.Restarts}
}

// Trouble returns what went wrong with this instance since Launch. It does
// not wait for a batch in flight.
func (in *Instance) Trouble() Trouble {
	return Trouble{Errors: in.errors.Load(), Restarts: in.restarts.Load()}
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

// Process sends orders to the plugin as one batch and returns one result
// per order. When the call fails (the process dies, hangs past its timeout,
// a message is over the size limit, or the answer cannot be read), Process
// finds the orders responsible by retrying the halves of the batch (see
// isolate): they come back as results with HostFailure set, and every other
// order is processed. A crash or a hang relaunches the plugin with backoff;
// a size failure never does. A disabled plugin returns ErrDisabled at once;
// any other error is ctx's.
func (in *Instance) Process(ctx context.Context, orders []sdk.Order) ([]sdk.Result, error) {
	return in.ProcessBatch(ctx, client.NewBatch(orders, nil), nil)
}

// ProcessBatch is Process for a batch that other plugins may get too,
// packed once for all of them, with the answers decoded into store (new
// storage when nil): the results are only valid until store's next Reset.
func (in *Instance) ProcessBatch(ctx context.Context, batch client.Batch, store *sdk.AnswerStore) ([]sdk.Result, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.disabled {
		return nil, ErrDisabled
	}
	results, err := in.isolate(ctx, batch, store)
	if err != nil {
		return nil, err
	}
	if in.proc == nil && !in.disabled {
		// Relaunch now rather than with the next batch, so that an idle
		// host reports the plugin up once it is.
		if err := in.relaunch(ctx); err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return results, nil
}

// callFailure is a failed call: what went wrong, in sdk.Fail* terms.
type callFailure struct {
	kind string
	err  error
}

// call sends one batch to the running process. A crash or a hang kills the
// process (in.proc is nil afterwards); a size or protocol failure leaves it
// running, since it is still answering. The failure is nil on success, and
// also when ctx ended (the caller checks ctx).
func (in *Instance) call(ctx context.Context, batch client.Batch, store *sdk.AnswerStore) ([]sdk.Result, *callFailure) {
	callCtx, cancel := context.WithTimeout(ctx, in.cfg.Timeout)
	defer cancel()
	start := time.Now()
	results, err := in.proc.rpc.ProcessBatch(callCtx, batch, store)
	in.metrics.PluginRPCSeconds.WithLabelValues(in.cfg.Name).Observe(time.Since(start).Seconds())
	if err == nil || ctx.Err() != nil {
		return results, nil
	}
	f := &callFailure{kind: sdk.FailProtocol, err: err}
	switch {
	case errors.As(err, new(*client.TooBigError)):
		f.kind = sdk.FailSize
	// The plugin's side may see the deadline first and cancel the stream,
	// so DeadlineExceeded can arrive before callCtx's own timer fires.
	case callCtx.Err() != nil || status.Code(err) == codes.DeadlineExceeded:
		f.kind = sdk.FailTimeout
		f.err = fmt.Errorf("no answer within %s: %w", in.cfg.Timeout, err)
	case in.proc.client.Exited() || status.Code(err) == codes.Unavailable:
		f.kind = sdk.FailCrash
	}
	in.metrics.PluginErrors.WithLabelValues(in.cfg.Name, f.kind).Inc()
	in.errors.Add(1)
	if f.kind == sdk.FailTimeout {
		// It may never answer again. Killed at once: go-plugin's Kill
		// would ask a hung process to exit and wait 2 s for it first.
		killNow(in.proc)
	}
	if f.kind == sdk.FailCrash || f.kind == sdk.FailTimeout {
		in.killProcess()
	}
	return nil, f
}

// killNow sends the plugin's process SIGKILL (or its platform's
// equivalent); p.kill then only reaps it.
func killNow(p *process) {
	rc := p.client.ReattachConfig()
	if rc == nil || rc.Pid <= 0 || p.client.Exited() {
		return
	}
	if proc, err := os.FindProcess(rc.Pid); err == nil {
		_ = proc.Kill()
	}
}

// killProcess kills the current process, if any; the next call relaunches.
func (in *Instance) killProcess() {
	if in.proc == nil {
		return
	}
	in.proc.kill()
	in.proc = nil
	in.metrics.PluginUp.WithLabelValues(in.cfg.Name).Set(0)
	in.up.Store(false)
}

// blame records a failure that is the plugin's fault, disabling the plugin
// when it failed more than restart_limit times within restart_window.
func (in *Instance) blame() {
	now := time.Now()
	recent := in.crashes[:0]
	for _, t := range in.crashes {
		if now.Sub(t) < in.cfg.RestartWindow {
			recent = append(recent, t)
		}
	}
	in.crashes = append(recent, now)
	if len(in.crashes) > in.cfg.RestartLimit {
		in.disable(fmt.Sprintf("it failed %d times within %s", len(in.crashes), in.cfg.RestartWindow))
	}
}

// disable gives up on the plugin until a reload or restart.
func (in *Instance) disable(why string) {
	in.killProcess()
	in.disabled = true
	in.logger.Error("PLUGIN DISABLED: "+why+"; its orders go to the dead-letter stream until it is fixed and the host reloaded or restarted",
		"crashes", len(in.crashes), "window", in.cfg.RestartWindow, "orders_failed_alone_in_a_row", in.convicted)
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
	in.restarts.Add(1)
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
		in.blame()
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
