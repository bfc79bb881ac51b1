package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/dispatch"
	"github.com/eventhost/eventhost/host/pluginhost"
	"github.com/eventhost/eventhost/sdk"
)

// running is a plugin instance and what it was launched from.
type running struct {
	inst *pluginhost.Instance
	launched
	target dispatch.Target
}

// launched is what a plugin instance was started from: its block, the
// sha256 of its binary, and its config block as decoded and accepted.
type launched struct {
	cfg    config.Plugin
	sum    string
	schema []sdk.Field
	values map[string]any
}

// changes lists what differs between l and block p, whose binary has sha256
// sum now; none means the running instance can serve p as it is. The config
// block is compared by its decoded values (against the running plugin's
// schema), so comments, layout and line numbers do not count, but a value
// that env() or file() reads does.
func (l launched) changes(p config.Plugin, sum string) []string {
	var why []string
	was := l.cfg
	for _, c := range []struct {
		what    string
		changed bool
	}{
		{"path", was.Path != p.Path},
		{"binary", l.sum != sum},
		{"sha256", was.SHA256 != p.SHA256},
		{"channels", !slices.Equal(was.Channels, p.Channels)},
		{"timeout", was.Timeout != p.Timeout},
		{"max_attempts", was.MaxAttempts != p.MaxAttempts},
		{"restart_limit", was.RestartLimit != p.RestartLimit},
		{"restart_window", was.RestartWindow != p.RestartWindow},
		{"allow_keys", !slices.Equal(was.AllowKeys, p.AllowKeys)},
		{"read_paths", !slices.Equal(was.ReadPaths, p.ReadPaths)},
		{"sandbox", was.Sandbox.PluginUser != p.Sandbox.PluginUser || was.Sandbox.Require != p.Sandbox.Require},
	} {
		if c.changed {
			why = append(why, c.what)
		}
	}
	values, diags := config.DecodePluginConfig(p, l.schema)
	if diags.HasErrors() || !reflect.DeepEqual(values, l.values) {
		why = append(why, "config")
	}
	return why
}

// Change is what a reload did, by plugin name: lists in the new config's
// order, Removed in the old one's.
type Change struct {
	Added, Removed, Replaced, Unchanged []string
	// Why says, for each replaced plugin, what changed: "path", "binary"
	// (its content on disk), "sha256", "channels", "timeout",
	// "max_attempts", "restart_limit", "restart_window", "allow_keys",
	// "config" (the config block), "disabled" (it had crashed too often).
	Why map[string][]string
}

// Reload makes the plugins of cfg the running ones, or returns an error and
// changes nothing. Plugins whose block and binary are as they were keep
// running untouched. New plugins, and new instances of changed ones, are
// launched and configured first: any failure there (a binary that fails its
// checks, a config block the plugin rejects, as a *pluginhost.ConfigError)
// stops them again and leaves the running set as it was. Every binary in
// cfg is checked, the unchanged ones' too, so a config that could not start
// from scratch is not accepted either.
//
// Then the dispatcher is switched between two batches, so each batch goes
// to the old set or the new one, never a mix; the pipeline's retry limits
// are set before. Removed plugins and replaced instances are stopped after
// the switch, so after their last batch. Only the plugin blocks of cfg are
// looked at: the daemon decides what else may change.
//
// Reload is for an engine started without only. ctx bounds the launches.
func (e *Engine) Reload(ctx context.Context, cfg *config.Config) (Change, error) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	e.mu.Lock()
	old := slices.Clone(e.plugins)
	e.mu.Unlock()
	byName := map[string]*running{}
	for _, r := range old {
		byName[r.inst.Name()] = r
	}

	ch := Change{Why: map[string][]string{}}
	next := make([]*running, len(cfg.Plugins))
	var toLaunch []int // positions in cfg.Plugins
	var errs []error
	for i, p := range cfg.Plugins {
		if err := pluginhost.CheckBinary(p.Name, p.Path, p.SHA256); err != nil {
			errs = append(errs, err)
			continue
		}
		r, ok := byName[p.Name]
		if !ok {
			ch.Added = append(ch.Added, p.Name)
			toLaunch = append(toLaunch, i)
			continue
		}
		sum, err := pluginhost.BinarySHA256(p.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("plugin %s: %w", p.Name, err))
			continue
		}
		why := r.changes(p, sum)
		if r.inst.Disabled() {
			why = append(why, "disabled")
		}
		if len(why) == 0 {
			ch.Unchanged = append(ch.Unchanged, p.Name)
			next[i] = r
			continue
		}
		ch.Replaced = append(ch.Replaced, p.Name)
		ch.Why[p.Name] = why
		toLaunch = append(toLaunch, i)
	}
	if len(errs) > 0 {
		return Change{}, errors.Join(errs...)
	}
	for _, i := range toLaunch {
		r, err := e.launch(ctx, cfg.Plugins[i])
		if err != nil {
			for _, j := range toLaunch {
				if next[j] != nil {
					next[j].inst.Stop()
				}
			}
			return Change{}, err
		}
		next[i] = r
	}

	inNext := map[*running]bool{}
	names := map[string]bool{}
	for _, r := range next {
		inNext[r], names[r.inst.Name()] = true, true
	}
	for _, r := range old {
		if !names[r.inst.Name()] {
			ch.Removed = append(ch.Removed, r.inst.Name())
		}
	}
	for _, i := range toLaunch {
		e.Pipeline.SetMaxAttempts(next[i].inst.Name(), next[i].cfg.MaxAttempts)
	}
	e.dispatcher.SetTargets(targets(next)) // waits for the batch in flight
	e.mu.Lock()
	e.plugins = next
	for _, r := range old {
		if !inNext[r] { // no more calls: its Trouble is final
			e.retired = e.retired.Add(r.inst.Trouble())
		}
	}
	e.mu.Unlock()

	for _, r := range old {
		switch name := r.inst.Name(); {
		case inNext[r]:
		case names[name]:
			r.inst.Retire()
		default:
			r.inst.Stop()
			// A removed plugin is not a plugin that is down.
			e.metrics.PluginUp.DeleteLabelValues(name)
		}
	}
	return ch, nil
}
