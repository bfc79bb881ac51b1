package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/daemon"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/notify"
	"github.com/eventhost/eventhost/host/pluginhost"
	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/client"
)

// hostMemoryLimit is `eventhost run`'s soft memory limit unless GOMEMLIMIT
// is set.
const hostMemoryLimit = 40 << 20

// hostGCPercent is `eventhost run`'s GC target unless GOGC is set. The
// host's live heap is a few MiB (the intake buffer holds no pointers and
// takes memory only while ids wait), so at Go's default of 100 it
// collected every few MiB, about every 1,000 orders. Measured with make
// bench (50,000 orders): at 100, 10.7 collections per 10,000 orders and a
// peak RSS of 52 MiB; at 200, 5.8 and 58 MiB; at 300, 4.0 and 62 MiB; with
// the 10 MiB intake buffer of before, 7.2 and 61 MiB. 200 collects less
// often than before in less memory.
const hostGCPercent = 200

func runCmd(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	path := configFlag(fs)
	drain := fs.Duration("drain-timeout", daemon.DefaultDrainTimeout,
		"how long a shutdown finishes the orders already received before it gives up on them and exits 1")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(cfg.Log, stderr)
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		// A soft limit: the collector works harder past it, nothing
		// fails. It bounds the heap that hostGCPercent lets grow.
		debug.SetMemoryLimit(hostMemoryLimit)
		if _, set := os.LookupEnv("GOGC"); !set {
			debug.SetGCPercent(hostGCPercent)
		}
	}
	client.SizeBuffers()
	plan, err := planSandbox(cfg)
	if err != nil {
		return err
	}
	m := metrics.New()
	logSandbox(plan, logger, m)
	d := daemon.New(cfg, logger, m)
	d.DrainTimeout = *drain
	if d.Notifier, err = notify.FromEnv(logger); err != nil {
		return err
	}
	defer reloadOnHangup(d.Reload)()
	return pluginConfigError(d.Run(ctx), stderr)
}

// pluginConfigError prints the diagnostics of a plugin that rejected its
// config block, which make err a usage error; other errors pass unchanged.
func pluginConfigError(err error, stderr io.Writer) error {
	if diags, ok := pluginhost.AsConfigError(err); ok {
		printDiags(stderr, diags)
		return usageError{errors.New("a plugin rejected its config block")}
	}
	return err
}

func validateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	path := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	// Plugins are validated inside the same sandbox as run starts them in.
	plan, planErr := planSandbox(cfg)
	printSandbox(stdout, plan)
	if planErr != nil {
		return planErr
	}
	failed := 0
	for _, p := range cfg.Plugins {
		desc, err := validatePlugin(ctx, p, stderr)
		if diags, ok := pluginhost.AsConfigError(err); ok {
			printDiags(stderr, diags)
			failed++
			continue
		}
		if err != nil {
			fmt.Fprintf(stderr, "error: %s: %v\n", p.Range, err)
			failed++
			continue
		}
		fmt.Fprintf(stdout, "plugin %s %s: ok (writes %q)\n", desc.Name, desc.Version, desc.Keys)
	}
	if failed > 0 {
		return usageError{fmt.Errorf("%s: %d of %d plugins failed validation", *path, failed, len(cfg.Plugins))}
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return nil
}

func validatePlugin(ctx context.Context, p config.Plugin, stderr io.Writer) (sdk.Description, error) {
	// Plugin logs during a validation are noise unless they are errors.
	return pluginhost.Validate(ctx, p, newLogger(config.Log{Level: "error"}, stderr), "")
}
