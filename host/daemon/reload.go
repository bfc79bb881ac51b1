package daemon

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/engine"
	"github.com/eventhost/eventhost/host/pluginhost"
)

// Reload asks the running host to read its config file again (SIGHUP,
// `systemctl reload`). It never blocks: requests made while one waits
// coalesce, and one made before Run has started its plugins is carried out
// once it has.
func (d *Daemon) Reload() {
	select {
	case d.reloads <- struct{}{}:
	default:
	}
}

// config returns the config in force.
func (d *Daemon) config() *config.Config {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	return d.cfg
}

// serveReloads carries out reload requests until ctx ends, calling added
// after each applied one that added a plugin. The returned func waits for a
// reload in progress.
func (d *Daemon) serveReloads(ctx context.Context, eng *engine.Engine, added func()) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.reloads:
			}
			if change, ok := d.reload(ctx, eng); ok && len(change.Added) > 0 && added != nil {
				added()
			}
		}
	}()
	return func() { <-done }
}

// reload reads the config file again and brings the plugins in line with
// it, telling systemd RELOADING=1 before and READY=1 after. ok is whether
// the new config is in force. A config that is invalid, that a
// plugin rejects, or that changes a setting only a restart can change is
// rejected whole, and the old one goes on untouched.
func (d *Daemon) reload(ctx context.Context, eng *engine.Engine) (change engine.Change, ok bool) {
	// Before the first READY=1 (still starting) systemd expects no
	// reload notifications, and a READY=1 would come too early.
	if d.ready.Load() {
		d.Notifier.Reloading()
		defer d.Notifier.Ready()
	}
	was := d.config()
	d.logger.Info("reloading the config", "config", was.Filename)
	now, change, err := d.loadAndApply(ctx, eng, was)
	if err != nil {
		d.metrics.Reloads.WithLabelValues("rejected").Inc()
		d.logger.Error("reload rejected", "config", was.Filename, "error", err, "running", eng.Names())
		d.Notifier.Status("reload rejected, running the previous config: %v", err)
		return engine.Change{}, false
	}
	d.cfgMu.Lock()
	d.cfg = now
	d.cfgMu.Unlock()
	if d.progress != nil {
		d.progress.setPlugins(now.Plugins)
	}
	d.logger.SetLevel(hclog.LevelFromString(now.Log.Level))
	d.metrics.Reloads.WithLabelValues("applied").Inc()
	d.logger.Info("reload applied", "added", change.Added, "removed", change.Removed,
		"replaced", replacedWhy(change), "unchanged", change.Unchanged)
	d.Notifier.Status("reloaded: %d plugins", len(now.Plugins))
	return change, true
}

func (d *Daemon) loadAndApply(ctx context.Context, eng *engine.Engine, was *config.Config) (*config.Config, engine.Change, error) {
	now, diags := config.Load(was.Filename)
	d.logDiags(diags)
	if diags.HasErrors() {
		return nil, engine.Change{}, fmt.Errorf("%s is not valid (%d errors)", was.Filename, len(diags.Errs()))
	}
	if need := restartOnly(was, now); len(need) > 0 {
		return nil, engine.Change{}, fmt.Errorf("changing %s needs a restart (systemctl restart eventhost); undo the change to reload the rest",
			strings.Join(need, ", "))
	}
	change, err := eng.Reload(ctx, now)
	if diags, ok := pluginhost.AsConfigError(err); ok {
		d.logDiags(diags)
		return nil, engine.Change{}, errors.New("a plugin rejected its config block")
	}
	if err != nil {
		return nil, engine.Change{}, err
	}
	return now, change, nil
}

func (d *Daemon) logDiags(diags hcl.Diagnostics) {
	for _, diag := range diags {
		if diag.Severity == hcl.DiagWarning {
			d.logger.Warn("config warning", "diagnostic", diag.Error())
			continue
		}
		d.logger.Error("config error", "diagnostic", diag.Error())
	}
}

// restartOnly names the settings that differ between was and now and that
// a reload cannot change: the Redis connection, the source, the order key
// prefix, the batch bounds, the dead-letter stream, the order limits, the
// metrics and dashboard listeners and the log format. They are fixed in the connections, listeners and
// goroutines made at start, and in the keys the plugins may not write.
// Everything else can: plugin blocks, plugin_dir (through the plugins'
// paths) and the log level.
func restartOnly(was, now *config.Config) []string {
	var out []string
	for _, s := range []struct {
		name    string
		changed bool
	}{
		{"redis", !reflect.DeepEqual(was.Redis, now.Redis)},
		{"source", !reflect.DeepEqual(was.Source, now.Source)},
		{"order_key_prefix", was.OrderKeyPrefix != now.OrderKeyPrefix},
		{"batch", was.Batch != now.Batch},
		{"dead_letter", was.DeadLetter != now.DeadLetter},
		{"limits", was.Limits != now.Limits},
		{"metrics", was.Metrics != now.Metrics},
		{"ui", was.UI != now.UI},
		{"log format", was.Log.JSON != now.Log.JSON},
	} {
		if s.changed {
			out = append(out, s.name)
		}
	}
	return out
}

// replacedWhy is each replaced plugin with what changed, as
// "name (config, binary)".
func replacedWhy(c engine.Change) []string {
	out := make([]string, len(c.Replaced))
	for i, name := range c.Replaced {
		out[i] = fmt.Sprintf("%s (%s)", name, strings.Join(c.Why[name], ", "))
	}
	return out
}
