package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/redisconn"
	"github.com/eventhost/eventhost/host/rerun"
)

func backfillCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backfill", stderr)
	path := configFlag(fs)
	plugin := fs.String("plugin", "", "the plugin to run over the orders it has not processed (required)")
	batch := fs.Int("batch", 0, "orders per batch (default: the config's batch.max_orders)")
	every := fs.Duration("progress", 5*time.Second, "how often to log progress when stderr is not a terminal")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *plugin == "":
		return usageError{errors.New("-plugin NAME is required")}
	case *batch < 0:
		return usageError{fmt.Errorf("-batch %d: want 1 or more", *batch)}
	case *every <= 0:
		return usageError{fmt.Errorf("-progress %s: want a positive duration", *every)}
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	if !hasPlugin(cfg.Plugins, *plugin) {
		return usageError{fmt.Errorf("%s has no plugin %q", *path, *plugin)}
	}
	if *batch > 0 {
		cfg.Batch.MaxOrders = *batch
	}
	logger, progress := progressOutput(stderr, cfg.Log, "backfill "+*plugin, *every)
	rdb, err := redisconn.New(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	rep, err := rerun.Backfill(ctx, cfg, rdb, logger, metrics.New(), *plugin, progress)
	if err != nil && !interruptedEarly(ctx, err) {
		return pluginConfigError(err, stderr)
	}
	fmt.Fprintln(stdout, backfillSummary(rep, err != nil))
	return nil
}

// interruptedEarly reports whether err is SIGINT or SIGTERM (which end ctx)
// stopping a run before it sent anything: a clean stop, not a failure.
func interruptedEarly(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled)
}

// backfillSummary is the line backfill ends with; cut is true when it was
// interrupted before it knew what to do.
func backfillSummary(rep rerun.BackfillReport, cut bool) string {
	s := fmt.Sprintf("backfill %s: processed %d, already done %d, dead-lettered %d (%d to do of %d orders stored), took %s",
		rep.Plugin, rep.Applied, rep.AlreadyDone, rep.DeadLettered, rep.ToDo, rep.Stored, rep.Took.Round(time.Millisecond))
	if rep.OffChannel > 0 {
		s += fmt.Sprintf("\n%d more orders left out: their channel is not one of the plugin's, or cannot be told", rep.OffChannel)
	}
	switch {
	case cut:
		s += "\ninterrupted before the scan finished; run the same command again"
	case rep.Interrupted():
		s += fmt.Sprintf("\ninterrupted: %d orders left; run the same command again to carry on", rep.ToDo-rep.Sent)
	}
	return s
}

func hasPlugin(plugins []config.Plugin, name string) bool {
	for _, p := range plugins {
		if p.Name == name {
			return true
		}
	}
	return false
}
