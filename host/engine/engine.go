// Package engine is a set of running plugins behind one pipeline: the plugin
// processes, the policy each one's effects are checked against, the
// dispatcher and the applier. The daemon feeds it from its source; backfill
// and dead-letter replay feed it from the command line.
package engine

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/dispatch"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/pipeline"
	"github.com/eventhost/eventhost/host/pluginhost"
	"github.com/eventhost/eventhost/host/policy"
)

// Engine is plugins and the pipeline that feeds them.
type Engine struct {
	Loader   *orders.Loader
	Applier  *apply.Applier
	Pipeline *pipeline.Pipeline

	instances []*pluginhost.Instance
	socketDir string
}

// Start launches the plugins of cfg (only those named in only, when it is
// not empty) and wires the pipeline. On error, whatever was launched is
// stopped. Stop the engine when done.
func Start(ctx context.Context, cfg *config.Config, rdb redis.UniversalClient, logger hclog.Logger, m *metrics.Metrics, only ...string) (*Engine, error) {
	plugins, err := pick(cfg.Plugins, only)
	if err != nil {
		return nil, err
	}
	e := &Engine{}
	// Plugin sockets live in a directory of our own, not in a shared /tmp.
	if e.socketDir, err = os.MkdirTemp("", "eventhost-plugins-"); err != nil {
		return nil, fmt.Errorf("create plugin socket directory: %w", err)
	}
	for _, p := range plugins {
		in, err := pluginhost.Launch(ctx, p, logger, m, e.socketDir)
		if err != nil {
			e.Stop()
			return nil, fmt.Errorf("launch plugins: %w", err)
		}
		e.instances = append(e.instances, in)
	}

	e.Loader = orders.NewLoader(rdb, cfg.OrderKeyPrefix)
	reserved := []string{cfg.OrderKeyPrefix, orders.MarkerPrefix, cfg.DeadLetter.Stream}
	if cfg.Source.Stream != nil {
		reserved = append(reserved, cfg.Source.Stream.Key)
	}
	targets := make([]dispatch.Target, len(e.instances))
	for i, in := range e.instances {
		targets[i] = dispatch.Target{
			Processor: in,
			Channels:  in.Config().Channels,
			Policy:    policy.New(in.Name(), in.Description().Keys, reserved, policy.AllowKeys(in.Config().AllowKeys)),
		}
	}
	e.Applier = apply.New(rdb, cfg.DeadLetter.Stream, cfg.DeadLetter.MaxLen)
	e.Pipeline = pipeline.New(e.Loader, dispatch.New(targets, e.Loader.Key), e.Applier,
		m, logger.Named("pipeline"), cfg.Batch.MaxOrders, cfg.Batch.MaxWait)
	for _, in := range e.instances {
		e.Pipeline.SetMaxAttempts(in.Name(), in.Config().MaxAttempts)
	}
	return e, nil
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

// Names returns the running plugins' names, in config order.
func (e *Engine) Names() []string {
	out := make([]string, len(e.instances))
	for i, in := range e.instances {
		out[i] = in.Name()
	}
	return out
}

// Stop stops the plugins, last launched first, each after its batch in
// flight, and removes their socket directory.
func (e *Engine) Stop() {
	for i := len(e.instances) - 1; i >= 0; i-- {
		e.instances[i].Stop()
	}
	if e.socketDir != "" {
		_ = os.RemoveAll(e.socketDir)
	}
}
