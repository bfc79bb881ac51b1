package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/redisconn"
)

func deadletterCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "list" {
		return usageError{fmt.Errorf("usage: eventhost deadletter list [-config FILE] [-n COUNT]")}
	}
	fs := newFlags("deadletter list", stderr)
	path := configFlag(fs)
	count := fs.Int64("n", 100, "show at most this many entries, oldest first")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	rdb, err := redisconn.New(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	entries, err := deadletter.List(ctx, rdb, cfg.DeadLetter.Stream, *count)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTRY\tTIME\tORDER\tPLUGIN\tATTEMPTS\tREASON")
	for _, e := range entries {
		plugin := e.Plugin
		if plugin == "" {
			plugin = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", e.StreamID, e.Time.Format(time.RFC3339), e.OrderID, plugin, e.Attempts, e.Reason)
	}
	return tw.Flush()
}
