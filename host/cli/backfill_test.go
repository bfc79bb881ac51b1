package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eventhost/eventhost/host/rerun"
)

func TestProgressRate(t *testing.T) {
	tests := []struct {
		name            string
		finished, total int
		elapsed         time.Duration
		rate            float64
		eta             time.Duration
	}{
		{"nothing yet", 0, 100, time.Second, 0, 0},
		{"no time yet", 5, 100, 0, 0, 0},
		{"half way", 50, 100, 10 * time.Second, 5, 10 * time.Second},
		{"done", 100, 100, 4 * time.Second, 25, 0},
		{"more than total", 120, 100, 4 * time.Second, 30, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rate, eta := progressRate(tt.finished, tt.total, tt.elapsed)
			if rate != tt.rate || eta != tt.eta {
				t.Errorf("progressRate(%d, %d, %s) = %v, %s; want %v, %s", tt.finished, tt.total, tt.elapsed, rate, eta, tt.rate, tt.eta)
			}
		})
	}
}

// TestLogProgress: off a terminal, a line every interval and no more.
func TestLogProgress(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	p := &logProgress{what: "backfill x", every: 5 * time.Second, now: func() time.Time { return now },
		logger: hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Info})}
	p.Start(1000)
	for i := 1; i <= 60; i++ { // 12s of 200ms ticks
		now = now.Add(200 * time.Millisecond)
		p.Update(i * 10)
	}
	p.Finish(600)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d progress lines in 12s at one per 5s, want 2:\n%s", len(lines), out.String())
	}
	for i, want := range []string{
		"backfill x: progress: done=250 total=1000 rate=50/s eta=15s",
		"backfill x: progress: done=500 total=1000 rate=50/s eta=10s",
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %q, want it to hold %q", i+1, lines[i], want)
		}
	}
}

func TestBackfillSummary(t *testing.T) {
	rep := rerun.BackfillReport{Plugin: "x", Stored: 10, ToDo: 4, Sent: 4, Took: 1234567 * time.Microsecond,
		Counts: rerun.Counts{Applied: 2, AlreadyDone: 1, DeadLettered: 1}}
	want := "backfill x: processed 2, already done 1, dead-lettered 1 (4 to do of 10 orders stored), took 1.235s"
	if got := backfillSummary(rep, false); got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
	rep.Sent = 1
	if got := backfillSummary(rep, false); !strings.HasSuffix(got, "\ninterrupted: 3 orders left; run the same command again to carry on") {
		t.Errorf("interrupted summary = %q", got)
	}
}
