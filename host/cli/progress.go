package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/rerun"
)

// progressOutput returns the logger of a long run and how it shows its
// progress on stderr: a bar when stderr is a terminal, log lines every
// interval otherwise (a journal, a file, a pipe). On a terminal, a log line
// clears the bar's line first, and the bar comes back below it.
func progressOutput(stderr io.Writer, cfg config.Log, what string, every time.Duration) (hclog.Logger, rerun.Progress) {
	if f, ok := stderr.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		logger := newLogger(cfg, stderr)
		return logger, &logProgress{what: what, logger: logger, every: every, now: time.Now}
	}
	tty := &terminal{out: stderr}
	return newLogger(cfg, logWriter{tty}), &barProgress{what: what, tty: tty}
}

// terminal serializes the bar's and the logger's writes to stderr.
type terminal struct {
	mu  sync.Mutex
	out io.Writer
	// bar is true while the bar is on the current line.
	bar bool
}

// barWriter is where the bar draws itself.
type barWriter struct{ *terminal }

func (w barWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bar = true
	return w.out.Write(p)
}

// logWriter writes log lines, erasing the bar first; the bar draws itself
// again below on its next update.
type logWriter struct{ *terminal }

func (w logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bar {
		w.bar = false
		if _, err := io.WriteString(w.out, "\r\x1b[K"); err != nil {
			return 0, err
		}
	}
	return w.out.Write(p)
}

// endBar leaves the bar as it stands, on a line of its own.
func (t *terminal) endBar() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bar {
		t.bar = false
		_, _ = io.WriteString(t.out, "\n")
	}
}

// barProgress draws a progress bar: done/total, rate and time left.
type barProgress struct {
	what string
	tty  *terminal
	bar  *progressbar.ProgressBar
}

func (b *barProgress) Start(total int) {
	b.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(barWriter{b.tty}),
		progressbar.OptionSetDescription(b.what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("orders"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
	)
	_ = b.bar.RenderBlank()
}

func (b *barProgress) Update(finished int) { _ = b.bar.Set(finished) }

func (b *barProgress) Finish(finished int) {
	_ = b.bar.Set(finished)
	_ = b.bar.Exit()
	b.tty.endBar()
}

// logProgress logs a progress line every interval: done, total, rate, ETA.
type logProgress struct {
	what   string
	logger hclog.Logger
	every  time.Duration
	now    func() time.Time

	total       int
	start, last time.Time
}

func (l *logProgress) Start(total int) {
	l.total = total
	l.start = l.now()
	l.last = l.start
}

func (l *logProgress) Update(finished int) {
	if now := l.now(); now.Sub(l.last) >= l.every {
		l.last = now
		l.log(finished, now)
	}
}

func (l *logProgress) Finish(int) {}

func (l *logProgress) log(finished int, now time.Time) {
	rate, eta := progressRate(finished, l.total, now.Sub(l.start))
	l.logger.Info(l.what+": progress", "done", finished, "total", l.total,
		"rate", fmt.Sprintf("%.0f/s", rate), "eta", eta.Round(time.Second))
}

// progressRate is orders per second so far, and the time the rest will take
// at that rate (0 when nothing is finished yet: no rate to go by).
func progressRate(finished, total int, elapsed time.Duration) (perSecond float64, eta time.Duration) {
	if finished <= 0 || elapsed <= 0 {
		return 0, 0
	}
	perSecond = float64(finished) / elapsed.Seconds()
	left := max(total-finished, 0)
	return perSecond, time.Duration(float64(left) / perSecond * float64(time.Second))
}
