package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/rerun"
)

var testEntries = []deadletter.Entry{
	{StreamID: "1764000000000-0", OrderID: "2020-0000007", Channel: "purchase_orders", Plugin: "liar",
		Reason: "plugin error: liar refuses order 2020-0000007", Attempts: 3, Time: time.UnixMilli(1764000000000)},
	{StreamID: "1764000000001-0", OrderID: "ghost", Channel: "purchase_orders",
		Reason: "order purchase_order_details:ghost does not exist", Attempts: 1, Time: time.UnixMilli(1764000000001)},
	{StreamID: "1764000000002-0", OrderID: "9", Plugin: "p", Reason: "panic: boom\n\tgoroutine 1\tmain.go:3", Attempts: 1},
}

func TestWriteEntriesTable(t *testing.T) {
	tests := []struct {
		name    string
		entries []deadletter.Entry
		more    bool
		want    string
	}{
		{"empty", nil, false, "ENTRY  TIME  ORDER  PLUGIN  ATTEMPTS  REASON\n0 entries\n"},
		{"one", testEntries[:1], false, "" +
			"ENTRY            TIME                  ORDER         PLUGIN  ATTEMPTS  REASON\n" +
			"1764000000000-0  2025-11-24T16:00:00Z  2020-0000007  liar    3         plugin error: liar refuses order 2020-0000007\n" +
			"1 entry\n"},
		{"bad order, no time, multi-line reason, more", testEntries, true, "" +
			"ENTRY            TIME                  ORDER         PLUGIN  ATTEMPTS  REASON\n" +
			"1764000000000-0  2025-11-24T16:00:00Z  2020-0000007  liar    3         plugin error: liar refuses order 2020-0000007\n" +
			"1764000000001-0  2025-11-24T16:00:00Z  ghost         -       1         order purchase_order_details:ghost does not exist\n" +
			"1764000000002-0  -                     9             p       1         panic: boom goroutine 1 main.go:3\n" +
			"3 entries shown; more match (raise -n, or -n 0 for all)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeEntriesTable(&b, tt.entries, tt.more); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("table:\n%s\nwant:\n%s", b.String(), tt.want)
			}
		})
	}
}

// TestWriteEntriesTableEscapes: ids, plugins and reasons come from whoever
// publishes orders; a terminal escape in them must be printed escaped, and a
// tab must not shift the columns.
func TestWriteEntriesTableEscapes(t *testing.T) {
	entries := []deadletter.Entry{
		{StreamID: "1-0", OrderID: "\x1b]0;owned\a\x1b[2J", Plugin: "p", Reason: "order id \"\x1b[2J\" holds control character U+001B", Attempts: 1},
		{StreamID: "2-0", OrderID: "a\tb", Reason: "field who is not valid UTF-8: \xff\xfe", Attempts: 1},
		{StreamID: "3-0", OrderID: "\"quoted\"", Reason: "C1 \u009b31m and bidi \u202egnp.exe", Attempts: 1},
		{StreamID: "4-0", OrderID: "Judo – 決勝 #7", Reason: "plain: printed as is", Attempts: 1},
	}
	want := "" +
		"ENTRY  TIME  ORDER                    PLUGIN  ATTEMPTS  REASON\n" +
		"1-0    -     \"\\x1b]0;owned\\a\\x1b[2J\"  p       1         \"order id \\\"\\x1b[2J\\\" holds control character U+001B\"\n" +
		"2-0    -     \"a\\tb\"                   -       1         \"field who is not valid UTF-8: \\xff\\xfe\"\n" +
		"3-0    -     \"\\\"quoted\\\"\"             -       1         \"C1 \\u009b31m and bidi \\u202egnp.exe\"\n" +
		"4-0    -     Judo – 決勝 #7             -       1         plain: printed as is\n" +
		"4 entries\n"
	var b bytes.Buffer
	if err := writeEntriesTable(&b, entries, false); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	for _, c := range b.String() {
		if c == 0x1b || c == 0x9b || c == 0x202e || c == 0x07 {
			t.Errorf("output holds %U", c)
		}
	}
}

func TestWriteEntriesJSON(t *testing.T) {
	var b bytes.Buffer
	if err := writeEntriesJSON(&b, testEntries); err != nil {
		t.Fatal(err)
	}
	want := `{"entry":"1764000000000-0","order_id":"2020-0000007","channel":"purchase_orders","plugin":"liar","reason":"plugin error: liar refuses order 2020-0000007","attempts":3,"time":"2025-11-24T16:00:00Z"}
{"entry":"1764000000001-0","order_id":"ghost","channel":"purchase_orders","plugin":"","reason":"order purchase_order_details:ghost does not exist","attempts":1,"time":"2025-11-24T16:00:00Z"}
{"entry":"1764000000002-0","order_id":"9","channel":"","plugin":"p","reason":"panic: boom\n\tgoroutine 1\tmain.go:3","attempts":1}
`
	if b.String() != want {
		t.Errorf("json:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestCheckReplayFilter(t *testing.T) {
	tests := []struct {
		name   string
		filter deadletter.Filter
		all    bool
		ok     bool
	}{
		{"nothing", deadletter.Filter{}, false, false},
		{"all", deadletter.Filter{}, true, true},
		{"plugin", deadletter.Filter{Plugin: "liar"}, false, true},
		{"id", deadletter.Filter{ID: "7"}, false, true},
		{"bad orders", deadletter.Filter{Plugin: deadletter.NoPlugin}, false, true},
		{"all and a filter", deadletter.Filter{ID: "7"}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkReplayFilter(tt.filter, tt.all)
			if (err == nil) != tt.ok {
				t.Fatalf("checkReplayFilter(%+v, %v) = %v, want ok %v", tt.filter, tt.all, err, tt.ok)
			}
			var ue usageError
			if err != nil && !errors.As(err, &ue) {
				t.Errorf("error %v is not a usage error", err)
			}
		})
	}
}

func TestWriteReplayReport(t *testing.T) {
	tests := []struct {
		name string
		rep  rerun.ReplayReport
		want string
	}{
		{"all applied", rerun.ReplayReport{Sent: 3, Planned: 3, Counts: rerun.Counts{Applied: 3}},
			"replayed 3 of 3 entries: 3 applied, 0 already done, 0 dead-lettered again\n"},
		{"skipped and interrupted", rerun.ReplayReport{Sent: 1, Planned: 2,
			Skipped: []rerun.Skipped{{Entry: testEntries[0], Why: `plugin "liar" is not in the config`}},
			Counts:  rerun.Counts{AlreadyDone: 1}}, "" +
			`skipped entry 1764000000000-0 (order 2020-0000007, plugin liar): plugin "liar" is not in the config` + "\n" +
			"replayed 1 of 3 entries: 0 applied, 1 already done, 0 dead-lettered again, 1 skipped (left in the stream)\n" +
			"interrupted: 1 entries not replayed; run the same command again\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			writeReplayReport(&b, tt.rep)
			if b.String() != tt.want {
				t.Errorf("report:\n%s\nwant:\n%s", b.String(), tt.want)
			}
		})
	}
}

func TestDeadletterHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"deadletter", "-h"}, &stdout, &stderr); code != ExitOK {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, ExitOK, stderr.String())
	}
	if !strings.Contains(stdout.String(), "eventhost deadletter replay") {
		t.Errorf("help does not show the replay usage:\n%s", stdout.String())
	}
}

func TestUsageExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		say  string // in stderr
	}{
		{[]string{"deadletter"}, "usage: eventhost deadletter list"},
		{[]string{"deadletter", "purge"}, `unknown deadletter command "purge"`},
		{[]string{"deadletter", "list", "-n", "-1"}, "-n -1"},
		{[]string{"deadletter", "replay"}, "-plugin P, -id ID, or -all"},
		{[]string{"deadletter", "replay", "-all", "-plugin", "x"}, "-all replays every entry"},
		{[]string{"backfill"}, "-plugin NAME is required"},
		{[]string{"backfill", "-plugin", "x", "-batch", "-2"}, "-batch -2"},
		{[]string{"backfill", "-plugin", "x", "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Main(t.Context(), tt.args, &stdout, &stderr); code != ExitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, ExitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.say) {
				t.Errorf("stderr does not say %q:\n%s", tt.say, stderr.String())
			}
		})
	}
}
