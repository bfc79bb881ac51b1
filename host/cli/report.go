package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/pluginhost"
	"github.com/eventhost/eventhost/host/redisconn"
	"github.com/eventhost/eventhost/host/report"
)

func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report", stderr)
	path := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	// Plugins are launched inside the same sandbox as run starts them in.
	if _, err := planSandbox(cfg); err != nil {
		return err
	}
	plugins, launchErr := pluginViews(ctx, cfg, stderr)
	if _, ok := pluginhost.AsConfigError(launchErr); ok {
		return usageError{launchErr}
	}
	rdb, err := redisconn.New(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	s, err := report.Read(ctx, rdb, plugins)
	if s != nil {
		if rerr := s.Render(stdout); rerr != nil {
			return rerr
		}
	}
	return errors.Join(launchErr, err)
}

// pluginViews launches each configured plugin, as validate does, to learn
// the views it declares in its configuration, and stops it again: the
// report shows whatever the plugins say, and knows none of them. A plugin
// that cannot start is reported on stderr and left out of the report; the
// error returned then says so. A rejected config block is a *ConfigError.
func pluginViews(ctx context.Context, cfg *config.Config, stderr io.Writer) ([]report.Plugin, error) {
	var out []report.Plugin
	var errs []error
	for _, p := range cfg.Plugins {
		desc, err := validatePlugin(ctx, p, stderr)
		if diags, ok := pluginhost.AsConfigError(err); ok {
			printDiags(stderr, diags)
			return nil, err
		}
		if err != nil {
			fmt.Fprintf(stderr, "warning: %s: left out of the report: %v\n", p.Range, err)
			errs = append(errs, fmt.Errorf("plugin %s: read its views: %w", p.Name, err))
			continue
		}
		out = append(out, report.Plugin{Name: p.Name, Views: desc.Views})
	}
	return out, errors.Join(errs...)
}
