// Package engine is a set of running plugins behind one pipeline: the plugin
// processes, the policy each one's effects are checked against, the
// dispatcher and the applier. The daemon feeds it from its source; backfill
// and dead-letter replay feed it from the command line.
package engine

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/dispatch"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/pipeline"
	"github.com/eventhost/eventhost/host/pluginhost"
	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/sdk"
)

// Engine is plugins and the pipeline that feeds them.
type Engine struct {
	Loader   *orders.Loader
	Applier  *apply.Applier
	Pipeline *pipeline.Pipeline

	dispatcher *dispatch.Dispatcher
	logger     hclog.Logger
	metrics    *metrics.Metrics
	reserved   []string // keys no plugin may write
	// effectLimits bound each plugin's writes for one order (limits block).
	effectLimits policy.Limits
	socketDir    string

	// reloadMu makes reloads take turns; mu guards plugins, which a reload
	// replaces as a whole.
	reloadMu sync.Mutex
	mu       sync.Mutex
	plugins  []*running
	// retired is the Trouble of the instances a reload stopped, so that
	// PluginTrouble never goes down.
	retired pluginhost.Trouble
}

// PluginTrouble returns the plugins' failed calls and relaunches since
// Start, those of instances a reload replaced or removed included: the
// watchdog's sign that the host is riding out a failing plugin. It does not
// wait for a batch in flight.
func (e *Engine) PluginTrouble() pluginhost.Trouble {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.retired
	for _, r := range e.plugins {
		t = t.Add(r.inst.Trouble())
	}
	return t
}

// Start launches the plugins of cfg (only those named in only, when it is
// not empty) and wires the pipeline. On error, whatever was launched is
// stopped. Stop the engine when done.
func Start(ctx context.Context, cfg *config.Config, rdb redis.UniversalClient, logger hclog.Logger, m *metrics.Metrics, only ...string) (*Engine, error) {
	plugins, err := pick(cfg.Plugins, only)
	if err != nil {
		return nil, err
	}
	e := &Engine{logger: logger, metrics: m, reserved: ReservedKeys(cfg), effectLimits: cfg.EffectLimits}
	// Plugin sockets live in a directory of our own, not in a shared /tmp.
	if e.socketDir, err = pluginhost.NewSocketDir("", logger); err != nil {
		return nil, err
	}
	for _, p := range plugins {
		r, err := e.launch(ctx, p)
		if err != nil {
			e.Stop()
			return nil, fmt.Errorf("launch plugins: %w", err)
		}
		e.plugins = append(e.plugins, r)
	}

	e.Loader = orders.NewLoader(rdb, cfg.OrderKeyPrefix)
	e.Loader.Limits = cfg.Limits
	e.Applier = apply.New(rdb, cfg.DeadLetter.Stream)
	e.Applier.DeadLetterMaxLen = cfg.DeadLetter.MaxLen
	if c := cfg.Redis.Cluster; c != nil {
		e.Applier.WaitReplicas, e.Applier.WaitTimeout = c.WaitReplicas, c.WaitTimeout
	}
	e.dispatcher = dispatch.New(targets(e.plugins), e.Loader.Key)
	e.Pipeline = pipeline.New(e.Loader, e.dispatcher, e.Applier, m, logger.Named("pipeline"))
	e.Pipeline.MaxOrders, e.Pipeline.MaxWait = cfg.Batch.MaxOrders, cfg.Batch.MaxWait
	for _, r := range e.plugins {
		e.Pipeline.SetMaxAttempts(r.inst.Name(), r.cfg.MaxAttempts)
	}
	if cfg.Source.Stream != nil {
		e.Pipeline.MissingHashWait = cfg.Source.Stream.MissingHashWait
	}
	return e, nil
}

// ReservedKeys are the key prefixes no plugin may write under cfg: the
// order hashes, eventhost's own keys, the dead-letter stream and the source
// stream.
func ReservedKeys(cfg *config.Config) []string {
	out := []string{cfg.OrderKeyPrefix, keyspace.MarkerPrefix, cfg.DeadLetter.Stream}
	if cfg.Source.Stream != nil {
		out = append(out, cfg.Source.Stream.Key)
	}
	return out
}

// Policy is what the plugin of block p, which declared keys, may write under
// reserved (see ReservedKeys) within limits (the limits block): the check every answer of a running plugin
// passes, and the verdict `eventhost dry-run` prints.
func Policy(p config.Plugin, keys, reserved []string, limits policy.Limits) *policy.Policy {
	pol := policy.New(p.Name, keys, reserved)
	pol.AllowKeys, pol.Limits = p.AllowKeys, limits
	return pol
}

// launch starts the plugin of block p and notes what it was started from.
func (e *Engine) launch(ctx context.Context, p config.Plugin) (*running, error) {
	// Hashed before the launch: should the file change in between, the
	// next reload sees a change and replaces the plugin, which is harmless.
	sum, sumErr := pluginhost.BinarySHA256(p.Path)
	in, err := launchRetrying(ctx, p, e.logger, e.metrics, e.socketDir)
	if err != nil {
		return nil, err
	}
	if sumErr != nil {
		in.Stop()
		return nil, fmt.Errorf("plugin %s: %w", p.Name, sumErr)
	}
	return &running{
		inst: in,
		launched: launched{
			cfg: p, sum: sum, schema: in.Description().Config, values: in.Values(),
		},
		target: dispatch.Target{
			Processor: in,
			Channels:  p.Channels,
			Policy:    Policy(p, in.Description().Keys, e.reserved, e.effectLimits),
		},
	}, nil
}

// launchAttempts is how often a plugin that dies while it starts is tried:
// a crash at start is a crash like any other (killed by an operator or the
// OOM killer in that second), not a reason to refuse to run. A plugin whose
// config block is wrong is refused at once.
const launchAttempts = 3

func launchRetrying(ctx context.Context, p config.Plugin, logger hclog.Logger, m *metrics.Metrics, socketDir string) (*pluginhost.Instance, error) {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		in, err := pluginhost.Launch(ctx, p, logger, m, socketDir)
		if _, isConfig := pluginhost.AsConfigError(err); err == nil || isConfig || attempt == launchAttempts {
			return in, err
		}
		logger.Warn("plugin failed to start; trying again", "plugin", p.Name, "attempt", attempt, "error", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, err
		}
		wait *= 2
	}
}

func targets(rs []*running) []dispatch.Target {
	out := make([]dispatch.Target, len(rs))
	for i, r := range rs {
		out[i] = r.target
	}
	return out
}

func pick(all []config.Plugin, only []string) ([]config.Plugin, error) {
	if len(only) == 0 {
		return all, nil
	}
	var out []config.Plugin
	for _, name := range only {
		found := false
		for _, p := range all {
			if p.Name == name {
				out = append(out, p)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("no plugin %q in the config", name)
		}
	}
	return out, nil
}

// Names returns the running plugins' names, in config order. It is safe to
// call during a reload, and then returns the names before or after it.
func (e *Engine) Names() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, len(e.plugins))
	for i, r := range e.plugins {
		out[i] = r.inst.Name()
	}
	return out
}

// Descriptions returns what the running plugins said about themselves at
// launch (with the views of their configuration), in config order; like
// Names, safe during a reload.
func (e *Engine) Descriptions() []sdk.Description {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]sdk.Description, len(e.plugins))
	for i, r := range e.plugins {
		out[i] = r.inst.Description()
	}
	return out
}

// Down returns the names of the plugins whose process is not up (being
// relaunched after a crash, or disabled).
func (e *Engine) Down() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, r := range e.plugins {
		if !r.inst.Up() {
			out = append(out, r.inst.Name())
		}
	}
	return out
}

// Stop stops the plugins, last launched first, each after its batch in
// flight, and removes their socket directory.
func (e *Engine) Stop() {
	e.reloadMu.Lock() // a reload still launching finishes first
	defer e.reloadMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.plugins) - 1; i >= 0; i-- {
		e.plugins[i].inst.Stop()
	}
	if e.socketDir != "" {
		_ = os.RemoveAll(e.socketDir)
	}
}
