package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/engine"
	"github.com/eventhost/eventhost/host/pipeline"
	"github.com/eventhost/eventhost/host/pluginhost"
)

// subscribed tells systemd the host is ready. It is called once the host is
// subscribed and its plugins registered, after each (re)subscription (with
// Pub/Sub, before the catch-up scan); plugins answered their launch before
// that. reconnect is false the first time.
func (d *Daemon) subscribed(reconnect bool) {
	cfg := d.config()
	if reconnect {
		// After a reconnect or a reload.
		d.Notifier.Status("subscribed to %q; %d plugins; catching up", cfg.Source.Channels, len(cfg.Plugins))
		return
	}
	d.Notifier.Ready()
	d.Notifier.Status("subscribed to %q; %d plugins", cfg.Source.Channels, len(cfg.Plugins))
}

// caughtUp tells systemd a catch-up scan is over.
func (d *Daemon) caughtUp() {
	cfg := d.config()
	d.Notifier.Status("subscribed to %q and caught up; %d plugins", cfg.Source.Channels, len(cfg.Plugins))
}

// superviseSystemd keeps systemd informed while the pipeline runs: STOPPING=1
// as soon as ctx ends (shutdown begins: intake stops, received ids are
// finished), and watchdog pings while eng's pipeline makes progress. backlog
// is the number of ids waiting for the pipeline. The returned func ends both.
func (d *Daemon) superviseSystemd(ctx context.Context, eng *engine.Engine, backlog func() int) (stop func()) {
	stopping := context.AfterFunc(ctx, func() {
		d.Notifier.Stopping()
		d.Notifier.Status("stopping: finishing the orders already received")
	})
	watch, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	signs := func() (pipeline.Snapshot, pluginhost.Trouble) { return eng.Pipeline.Outcomes(), eng.PluginTrouble() }
	d.progress = newProgress(signs, d.cfg.Plugins, backlog)
	go func() {
		defer close(done)
		d.Notifier.Watchdog(watch, d.progress.check)
	}()
	return func() {
		stopping()
		stopWatch()
		<-done
	}
}

// stallGrace is how long, on top of the longest plugin timeout, ids may wait
// without any sign of progress before the pipeline counts as wedged. It
// covers a plugin relaunch: up to 5s of backoff, then go-plugin's one-minute
// start timeout.
const stallGrace = 90 * time.Second

// progress tells the watchdog whether the pipeline is wedged: ids are waiting
// (in the intake buffer or in a batch in flight) and, for longer than limit,
// none of its signs of life moved. A finished batch is one; so are a Redis
// retry and a plugin error or restart, because the host rides out a Redis
// outage or a crashing plugin by itself, and a restart would drop the ids it
// holds (Pub/Sub does not deliver them again). What is left is a pipeline
// stuck where nothing times out, which only a restart can fix.
type progress struct {
	// signs reads the pipeline's outcomes and the plugins' trouble.
	signs   func() (pipeline.Snapshot, pluginhost.Trouble)
	backlog func() int
	limit   time.Duration
	now     func() time.Time

	mu    sync.Mutex
	mark  int64     // the sum of the signs of life at the last check
	since time.Time // when the pipeline was last seen idle or moving
}

func newProgress(signs func() (pipeline.Snapshot, pluginhost.Trouble), plugins []config.Plugin, backlog func() int) *progress {
	return &progress{signs: signs, backlog: backlog, limit: stallLimit(plugins), now: time.Now, since: time.Now()}
}

// setPlugins fits the limit to plugins, after a reload.
func (p *progress) setPlugins(plugins []config.Plugin) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit = stallLimit(plugins)
}

func stallLimit(plugins []config.Plugin) time.Duration {
	var longest time.Duration
	for _, p := range plugins {
		longest = max(longest, p.Timeout)
	}
	return longest + stallGrace
}

// check returns nil while the pipeline is idle or moving, and an error that
// says what waits once it has been stuck for longer than the limit.
func (p *progress) check() error {
	out, trouble := p.signs()
	started, finished := out.BatchesStarted, out.BatchesFinished
	mark := finished + out.RedisRetries + trouble.Errors + trouble.Restarts
	waiting := p.backlog()
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if mark != p.mark || (waiting == 0 && started == finished) {
		p.mark, p.since = mark, now
		return nil
	}
	if stuck := now.Sub(p.since); stuck > p.limit {
		return fmt.Errorf("pipeline wedged: %d ids waiting and %d batches in flight, and no batch finished, Redis retry or plugin restart for %s",
			waiting, started-finished, stuck.Round(time.Second))
	}
	return nil
}
