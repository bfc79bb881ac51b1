// Command eventhost is the plugin-driven purchase-order processor. See
// README.md; `eventhost help` lists the subcommands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventhost/eventhost/host/cli"
	"github.com/eventhost/eventhost/host/sandbox"
)

func main() {
	// The host starts its own binary as the plugins' sandbox launcher.
	if len(os.Args) > 1 && os.Args[1] == sandbox.LauncherArg {
		sandbox.LauncherMain(os.Args)
	}
	// Non-dumpable before anything reads a secret; the sandbox reports
	// whether it held (host_not_dumpable).
	_ = sandbox.HardenHost()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
