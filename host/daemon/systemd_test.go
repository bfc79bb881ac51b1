package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/pipeline"
	"github.com/eventhost/eventhost/host/pluginhost"
)

// TestProgress walks the watchdog's liveness check through a pipeline's
// life: idle, busy and moving, riding out a Redis outage, and wedged.
func TestProgress(t *testing.T) {
	// The signs the watchdog reads: the pipeline's outcomes and the
	// plugins' trouble, as the engine reports them.
	var out pipeline.Snapshot
	var trouble pluginhost.Trouble
	signs := func() (pipeline.Snapshot, pluginhost.Trouble) { return out, trouble }
	backlog := 0
	p := newProgress(signs, []config.Plugin{{Timeout: 10 * time.Second}, {Timeout: 20 * time.Second}}, func() int { return backlog })
	if want := 20*time.Second + stallGrace; p.limit != want {
		t.Fatalf("limit = %s, want the longest plugin timeout plus stallGrace (%s)", p.limit, want)
	}
	clock := time.Unix(1_000_000, 0)
	p.now = func() time.Time { return clock }
	p.since = clock
	later := func(d time.Duration) { clock = clock.Add(d) }
	startBatch := func() { out.BatchesStarted++ }
	finishBatch := func() { out.BatchesFinished++ }

	steps := []struct {
		name    string
		do      func()
		wedged  bool
		wantMsg string
	}{
		{"idle for an hour", func() { later(time.Hour) }, false, ""},
		{"a batch runs and finishes", func() { startBatch(); backlog = 5; later(time.Second); finishBatch() }, false, ""},
		{"a batch in flight, within the limit", func() { startBatch(); backlog = 0; later(p.limit - time.Second) }, false, ""},
		{"a batch in flight past the limit", func() { later(2 * time.Second) }, true, "0 ids waiting and 1 batches in flight"},
		{"it finishes", func() { finishBatch() }, false, ""},
		{"ids keep waiting while batches finish", func() {
			for range 3 {
				backlog = 50
				startBatch()
				later(p.limit / 2)
				finishBatch()
				if err := p.check(); err != nil {
					t.Fatalf("a pipeline finishing batches counts as wedged: %v", err)
				}
			}
		}, false, ""},
		{"ids wait, Redis is down and retried", func() {
			backlog = 100
			startBatch()
			for range 10 {
				later(p.limit / 2)
				out.RedisRetries++
				if err := p.check(); err != nil {
					t.Fatalf("a pipeline retrying Redis counts as wedged: %v", err)
				}
			}
		}, false, ""},
		{"ids wait, a plugin restarts", func() {
			for range 3 {
				later(p.limit / 2)
				trouble.Restarts++
				if err := p.check(); err != nil {
					t.Fatalf("a pipeline relaunching a plugin counts as wedged: %v", err)
				}
			}
		}, false, ""},
		{"ids wait, plugin calls fail", func() {
			for range 3 {
				later(p.limit / 2)
				trouble.Errors++
				if err := p.check(); err != nil {
					t.Fatalf("a pipeline whose plugin calls fail counts as wedged: %v", err)
				}
			}
		}, false, ""},
		{"ids wait and nothing moves", func() { later(p.limit + time.Second) }, true, "100 ids waiting"},
		{"still nothing", func() { later(time.Minute) }, true, "no batch finished"},
		{"the batch finishes at last", func() { finishBatch(); backlog = 0 }, false, ""},
	}
	for _, s := range steps {
		s.do()
		err := p.check()
		if (err != nil) != s.wedged {
			t.Fatalf("%s: check() = %v, want wedged: %v", s.name, err, s.wedged)
		}
		if err != nil && !strings.Contains(err.Error(), s.wantMsg) {
			t.Errorf("%s: check() = %q, want it to mention %q", s.name, err, s.wantMsg)
		}
	}
}
