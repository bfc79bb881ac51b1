// Package cli implements eventhost's subcommands. Main maps each to an exit
// code so the command's main function only wires signals.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/eventhost/eventhost/host/config"
)

// Exit codes, documented in docs/operations.md (Exit codes).
const (
	ExitOK     = 0
	ExitFailed = 1 // the command ran and failed (Redis refused us, a plugin would not start, …)
	ExitUsage  = 2 // bad flags or an invalid config file
)

// usageError marks errors that are the caller's to fix.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

const usage = `usage: eventhost <command> [flags]

commands:
  run         run the daemon
  validate    check a config file and every plugin's config block
  publish     publish purchase orders the way the tutorial's producer does
  report      print the sales histogram, event totals and invoice counts
  deadletter  list dead-lettered orders, or replay them once the cause is fixed
  backfill    run one plugin over every stored order it has not processed
  dry-run     show what a plugin would write for stored orders, and whether the host allows it; writes nothing
  version     print eventhost's version and commit

run 'eventhost <command> -h' for a command's flags; 'eventhost -version' is 'eventhost version'.
`

// Main runs the subcommand in args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"run":        runCmd,
		"validate":   validateCmd,
		"publish":    publishCmd,
		"report":     reportCmd,
		"deadletter": deadletterCmd,
		"backfill":   backfillCmd,
		"dry-run":    dryRunCmd,
		"version":    versionCmd,
		"-version":   versionCmd,
		"--version":  versionCmd,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			fmt.Fprint(stdout, usage)
			return ExitOK
		}
		fmt.Fprintf(stderr, "eventhost: unknown command %q\n\n%s", args[0], usage)
		return ExitUsage
	}
	err := cmd(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	}
	fmt.Fprintf(stderr, "eventhost %s: %v\n", args[0], err)
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitFailed
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("eventhost "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	return nil
}

// loadConfig reads the config, printing its diagnostics.
func loadConfig(path string, stderr io.Writer) (*config.Config, error) {
	cfg, diags := config.Load(path)
	printDiags(stderr, diags)
	if diags.HasErrors() {
		return nil, usageError{fmt.Errorf("%s is not valid (%d errors)", path, len(diags.Errs()))}
	}
	return cfg, nil
}

// printDiags writes one line per diagnostic: file:line,col: summary; detail.
func printDiags(w io.Writer, diags hcl.Diagnostics) {
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		fmt.Fprintf(w, "%s: %s\n", sev, d.Error())
	}
}

func newLogger(cfg config.Log, stderr io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "eventhost",
		Level:      hclog.LevelFromString(cfg.Level),
		Output:     stderr,
		JSONFormat: cfg.JSON,
	})
}

func configFlag(fs *flag.FlagSet) *string {
	def := "config.hcl"
	if v := os.Getenv("EVENTHOST_CONFIG"); v != "" {
		def = v
	}
	return fs.String("config", def, "config file (default from $EVENTHOST_CONFIG)")
}
