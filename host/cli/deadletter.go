package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/redisconn"
	"github.com/eventhost/eventhost/host/rerun"
)

const deadletterUsage = `usage: eventhost deadletter list   [-config FILE] [-n N] [-plugin P] [-id ID] [-json]
       eventhost deadletter replay [-config FILE] (-plugin P | -id ID | -all)`

func deadletterCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New(deadletterUsage)}
	}
	switch args[0] {
	case "list":
		return deadletterListCmd(ctx, args[1:], stdout, stderr)
	case "replay":
		return deadletterReplayCmd(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, deadletterUsage)
		return flag.ErrHelp
	}
	return usageError{fmt.Errorf("unknown deadletter command %q\n%s", args[0], deadletterUsage)}
}

// filterFlags registers -plugin and -id.
func filterFlags(fs *flag.FlagSet) *deadletter.Filter {
	f := &deadletter.Filter{}
	fs.StringVar(&f.Plugin, "plugin", "", `only entries for this plugin ("-" for bad orders, which no plugin saw)`)
	fs.StringVar(&f.ID, "id", "", "only entries for this order id")
	return f
}

func deadletterListCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("deadletter list", stderr)
	path := configFlag(fs)
	count := fs.Int("n", 100, "show at most this many entries, oldest first (0: all)")
	filter := filterFlags(fs)
	asJSON := fs.Bool("json", false, "print one JSON object per entry and line, and no header or footer")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *count < 0 {
		return usageError{fmt.Errorf("-n %d: want 0 (all) or more", *count)}
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
	entries, more, err := deadletter.Find(ctx, rdb, cfg.DeadLetter.Stream, *filter, *count)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeEntriesJSON(stdout, entries)
	}
	return writeEntriesTable(stdout, entries, more)
}

// entryJSON is an entry as `deadletter list -json` prints it: the stream's
// field names, plus its id and the time.
type entryJSON struct {
	Entry    string `json:"entry"`
	OrderID  string `json:"order_id"`
	Channel  string `json:"channel"`
	Plugin   string `json:"plugin"`
	Reason   string `json:"reason"`
	Attempts int    `json:"attempts"`
	Time     string `json:"time,omitempty"`
}

func writeEntriesJSON(w io.Writer, entries []deadletter.Entry) error {
	enc := json.NewEncoder(w)
	for _, e := range entries {
		if err := enc.Encode(entryJSON{
			Entry: e.StreamID, OrderID: e.OrderID, Channel: e.Channel, Plugin: e.Plugin,
			Reason: e.Reason, Attempts: e.Attempts, Time: formatTime(e.Time, ""),
		}); err != nil {
			return err
		}
	}
	return nil
}

func writeEntriesTable(w io.Writer, entries []deadletter.Entry, more bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTRY\tTIME\tORDER\tPLUGIN\tATTEMPTS\tREASON")
	for _, e := range entries {
		plugin := e.Plugin
		if plugin == "" {
			plugin = deadletter.NoPlugin
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", shown(e.StreamID), formatTime(e.Time, "-"), shown(e.OrderID), shown(plugin), e.Attempts, shown(oneLine(e.Reason)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, entriesFooter(len(entries), more))
	return err
}

func entriesFooter(n int, more bool) string {
	s := fmt.Sprintf("%d entries", n)
	if n == 1 {
		s = "1 entry"
	}
	if more {
		s += " shown; more match (raise -n, or -n 0 for all)"
	}
	return s
}

// formatTime is t in UTC as RFC 3339, or none for the zero time.
func formatTime(t time.Time, none string) string {
	if t.IsZero() {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}

// oneLine keeps a reason (a plugin's error text, a panic) on its row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// shown makes a string from a dead letter safe to print on a terminal: ids
// and reasons come from whoever published the order or wrote the plugin,
// and an escape sequence in them would run in the reader's terminal. A
// string with anything strconv.Quote would escape (controls, tabs that
// would break the table's columns, invalid UTF-8, bidi overrides) is shown
// quoted, Go style; so is one that starts with a quote, so that quoted
// always means escaped. Anything else is shown as is.
func shown(s string) string {
	if strings.HasPrefix(s, `"`) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func deadletterReplayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("deadletter replay", stderr)
	path := configFlag(fs)
	filter := filterFlags(fs)
	all := fs.Bool("all", false, "replay every entry")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkReplayFilter(*filter, *all); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(cfg.Log, stderr)
	rdb, err := redisconn.New(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	entries, _, err := deadletter.Find(ctx, rdb, cfg.DeadLetter.Stream, *filter, 0)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		fmt.Fprintln(stdout, "no dead letters match: nothing to replay")
		return nil
	}
	rep, err := rerun.Replay(ctx, cfg, rdb, logger, metrics.New(), entries)
	if interruptedEarly(ctx, err) {
		fmt.Fprintln(stdout, "interrupted before any entry was replayed")
		return nil
	}
	if err != nil {
		return pluginConfigError(err, stderr)
	}
	writeReplayReport(stdout, rep)
	return nil
}

// checkReplayFilter refuses a replay of everything by accident.
func checkReplayFilter(f deadletter.Filter, all bool) error {
	switch {
	case all && f != (deadletter.Filter{}):
		return usageError{errors.New("-all replays every entry: drop it, or drop -plugin and -id")}
	case !all && f == (deadletter.Filter{}):
		return usageError{errors.New("say which entries to replay: -plugin P, -id ID, or -all")}
	}
	return nil
}

func writeReplayReport(w io.Writer, rep rerun.ReplayReport) {
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "skipped entry %s (order %s, plugin %s): %s\n", shown(s.Entry.StreamID), shown(s.Entry.OrderID), shown(s.Entry.Plugin), shown(oneLine(s.Why)))
	}
	fmt.Fprintf(w, "replayed %d of %d entries: %d applied, %d already done, %d dead-lettered again",
		rep.Sent, rep.Planned+len(rep.Skipped), rep.Applied, rep.AlreadyDone, rep.DeadLettered)
	if len(rep.Skipped) > 0 {
		fmt.Fprintf(w, ", %d skipped (left in the stream)", len(rep.Skipped))
	}
	fmt.Fprintln(w)
	if rep.Sent < rep.Planned {
		fmt.Fprintf(w, "interrupted: %d entries not replayed; run the same command again\n", rep.Planned-rep.Sent)
	}
}
