// Package daemon runs eventhost: it connects to Redis, launches the plugins,
// subscribes, and feeds the pipeline until told to stop, then shuts down in
// order: stop intake, finish what was received, stop the plugins.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/catchup"
	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/engine"
	"github.com/eventhost/eventhost/host/intake"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/notify"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/redisconn"
	"github.com/eventhost/eventhost/host/rediserr"
	"github.com/eventhost/eventhost/host/source"
)

// DefaultDrainTimeout bounds how long a shutdown waits for the orders
// already received; it is well inside the unit's TimeoutStopSec.
const DefaultDrainTimeout = 60 * time.Second

// intakeBuffer is how many received ids may wait for the pipeline. Pub/Sub
// cannot be paused, so a burst must fit here or in Redis' output buffer for
// the subscriber; a burst that overflows both costs a reconnect, and
// catch-up then finds what was dropped. The buffer (an intake.Queue) holds
// an id in about 32 bytes plus the id's own, without pointers the garbage
// collector would scan, and only while ids wait: a channel of refs took
// 10 MiB of 160-byte slots, scanned on every cycle, full or not.
const intakeBuffer = 1 << 16

// Daemon is one running host.
type Daemon struct {
	logger  hclog.Logger
	metrics *metrics.Metrics
	ready   atomic.Bool

	// cfg is the config in force; a reload replaces it. Read it with
	// config() where a reload may run at the same time.
	cfgMu sync.Mutex
	cfg   *config.Config
	// reloads holds a pending reload request (see Reload).
	reloads chan struct{}
	// progress is the watchdog's liveness check, while Run runs.
	progress *progress

	// Notifier tells systemd about readiness and shutdown and pings its
	// watchdog (see systemd.go); nil tells nothing.
	Notifier *notify.Notifier
	// DrainTimeout bounds how long a shutdown waits for the orders already
	// received; what is left then is abandoned and Run returns an error
	// (exit 1). New sets DefaultDrainTimeout; eventhost run -drain-timeout
	// changes it (tests use seconds).
	DrainTimeout time.Duration
}

// New returns a daemon for cfg. It does no I/O.
func New(cfg *config.Config, logger hclog.Logger, m *metrics.Metrics) *Daemon {
	return &Daemon{cfg: cfg, logger: logger, metrics: m, reloads: make(chan struct{}, 1), DrainTimeout: DefaultDrainTimeout}
}

// Run runs the host until ctx ends, then drains and returns nil; an error
// means it could not start or could not go on.
func (d *Daemon) Run(ctx context.Context) error {
	d.Notifier.Status("connecting to Redis at %s", d.cfg.Redis.Where())
	rdb, err := redisconn.New(d.cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := d.waitForRedis(ctx, rdb); err != nil {
		return err
	}
	if d.cfg.Redis.Cluster == nil {
		d.retireKeys(ctx, rdb)
	}

	d.Notifier.Status("launching %d plugins", len(d.cfg.Plugins))
	eng, err := engine.Start(ctx, d.cfg, rdb, d.logger, d.metrics)
	if err != nil {
		return err
	}
	defer eng.Stop()

	if d.cfg.Metrics.Listen != "" {
		srv := d.serveHTTP(eng.Down, eng.Pipeline.Paused)
		defer srv.Close()
	}
	if d.cfg.UI.Listen != "" {
		defer d.serveDashboard(ctx, rdb, eng)()
	}

	if d.cfg.Redis.Cluster != nil {
		defer d.sweepRecords(ctx, eng.Applier)()
	}

	// Two intakes, closed once every producer has stopped: ids for what the
	// source receives, found for what catch-up finds. A batch takes found
	// ids only into the room live ones leave, so live orders never queue
	// behind a catch-up; found is small, so the scan goes at the pace the
	// pipeline takes its finds instead of filling the live intake (where
	// received ids would then be dropped).
	ids := intake.NewQueue(intakeBuffer)
	found := make(chan orders.Ref, 2*d.cfg.Batch.MaxOrders)
	emit := func(ctx context.Context, r orders.Ref) error {
		select {
		case found <- r:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	intake, stopIntake := context.WithCancel(ctx)
	defer stopIntake()
	var producers sync.WaitGroup
	srcErr := make(chan error, 1)
	// After a reload that added a plugin, the plugin must be registered
	// (what is stored by then is history for it) and caught up.
	var pluginsAdded func()
	switch d.cfg.Source.Kind {
	case "stream":
		eng.Applier.AckGroup = d.cfg.Source.Stream.Group
		src := source.NewStream(rdb, *d.cfg.Source.Stream, d.logger.Named("source"), d.metrics)
		src.Count = d.cfg.Batch.MaxOrders
		// The group's pending entries are the record of unfinished work:
		// no catch-up scan is needed.
		src.OnReady = func() { d.subscribed(d.ready.Swap(true)) }
		producers.Add(1)
		go func() { defer producers.Done(); srcErr <- src.Run(intake, ids) }()
	default:
		scanner := catchup.NewScanner(rdb, d.cfg.OrderKeyPrefix)
		routes := catchup.NewRoutes(d.cfg.Source.Channels, d.cfg.Source.IDPrefixes)
		runner := catchup.NewRunner(scanner, catchup.NewRegistry(rdb, scanner), routes, d.logger.Named("catchup"), d.metrics)
		src := source.NewPubSub(rdb, d.cfg.Source.Channels, d.logger.Named("source"), d.metrics)
		src.Sharded = d.cfg.Source.Sharded
		// Whatever was published while we were not subscribed is found in
		// the order hashes. The host is ready once subscribed with every
		// plugin registered: from then on no order goes uncounted. The
		// scan for what was missed runs meanwhile (on a large history it
		// takes seconds); the done markers make its overlap with live
		// orders harmless.
		src.OnSubscribed = func(bool) { runner.Trigger() }
		src.OnDrained = runner.Trigger // ids dropped while the intake was full
		runner.OnRegistered = func() { d.subscribed(d.ready.Swap(true)) }
		runner.OnDone = d.caughtUp
		pluginsAdded = runner.Trigger
		producers.Add(2)
		go func() { defer producers.Done(); srcErr <- src.Run(intake, ids) }()
		go func() { defer producers.Done(); runner.Run(intake, d.catchUpPlugins(eng), emit) }()
	}
	go func() { producers.Wait(); ids.Close(); close(found) }()
	defer d.superviseSystemd(ctx, eng, func() int { return ids.Len() + len(found) })()
	// Reloads stop with intake, and are over before the plugins stop.
	defer d.serveReloads(intake, eng, pluginsAdded)()

	// Draining must outlive ctx: ids already received are finished even
	// though intake has stopped. It is bounded, so that a Redis that stays
	// away does not hold shutdown until systemd's SIGKILL; what is left then
	// is found again (catch-up, the stream's pending list).
	work, stopWorkCause := context.WithCancelCause(context.WithoutCancel(ctx))
	stopWork := func() { stopWorkCause(nil) }
	defer stopWork()
	stopDrainClock := context.AfterFunc(ctx, func() {
		clock := time.NewTimer(d.DrainTimeout)
		defer clock.Stop()
		select {
		case <-clock.C:
			d.logger.Error("shutdown: orders still unfinished after the drain timeout; leaving them for the next start", "timeout", d.DrainTimeout)
			stopWorkCause(fmt.Errorf("shutdown: orders still unfinished after the drain timeout (%s); the next start finds them", d.DrainTimeout))
		case <-work.Done():
		}
	})
	defer stopDrainClock()
	err = eng.Pipeline.RunIntake(work, ids, found)
	if cause := context.Cause(work); work.Err() != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	stopWork() // ends the drain clock
	d.ready.Store(false)
	stopIntake() // when the pipeline failed, the source must not wait for it
	producers.Wait()
	if serr := <-srcErr; err == nil {
		err = serr
	}
	d.logger.Info("intake stopped and received orders finished; stopping plugins")
	d.Notifier.Status("stopping plugins")
	return err
}

// catchUpPlugins returns the running plugins with the channels the config
// in force gives them. A plugin a reload is adding is left out until its
// config is in force: the reload triggers a catch-up then.
func (d *Daemon) catchUpPlugins(eng *engine.Engine) func() []catchup.Plugin {
	return func() []catchup.Plugin {
		cfg := d.config()
		var out []catchup.Plugin
		for _, name := range eng.Names() {
			for _, p := range cfg.Plugins {
				if p.Name == name {
					out = append(out, catchup.Plugin{Name: name, Channels: p.Channels})
				}
			}
		}
		return out
	}
}

// Ready reports whether the host is subscribed (or reading the stream) with
// its plugins registered; a catch-up scan may still run.
func (d *Daemon) Ready() bool { return d.ready.Load() }

// waitForRedis pings until Redis answers. Refused credentials or TLS
// certificates end it at once: waiting will not fix them.
func (d *Daemon) waitForRedis(ctx context.Context, rdb redis.UniversalClient) error {
	b := backoff.NewExponentialBackOff()
	b.MaxInterval = 5 * time.Second
	b.MaxElapsedTime = 0
	b.Reset() // the constructor already fixed the first interval at its default
	for {
		err := rdb.Ping(ctx).Err()
		if err == nil {
			d.logger.Info("connected to redis", "redis", d.cfg.Redis.String())
			return nil
		}
		if rediserr.AuthError(err) || redisconn.TLSError(err) {
			return fmt.Errorf("connect to %s: %w", d.cfg.Redis, err)
		}
		wait := b.NextBackOff()
		d.logger.Error("redis is not answering; retrying", "redis", d.cfg.Redis.String(), "error", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("connect to %s: %w", d.cfg.Redis, ctx.Err())
		}
	}
}

// retireKeys deletes the keys older hosts kept to number their apply runs
// (keyspace.RetiredKeys), which no host reads any more. It is housekeeping:
// asked first with EXISTS, so that an ACL without UNLINK is not refused on
// every start; a failure is logged, and the keys stay.
func (d *Daemon) retireKeys(ctx context.Context, rdb redis.UniversalClient) {
	keys := keyspace.RetiredKeys()
	n, err := rdb.Exists(ctx, keys...).Result()
	if err == nil && n > 0 {
		n, err = rdb.Unlink(ctx, keys...).Result()
	}
	switch {
	case err != nil:
		d.logger.Warn("could not delete the keys older hosts numbered their applies in; they are unused and may be deleted by hand", "keys", "eventhost:applies*", "error", err)
	case n > 0:
		d.logger.Info("deleted the keys older hosts numbered their applies in: no host reads them any more", "keys", n)
	}
}

func (d *Daemon) serveHTTP(down func() []string, paused func() (string, time.Time)) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	if d.cfg.Metrics.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	// notReady says why the host is not ready, or "": /readyz and the
	// eventhost_ready gauge both read it.
	notReady := func() string {
		if !d.Ready() {
			return "not yet subscribed with every plugin registered"
		}
		if reason, since := paused(); reason != "" {
			return fmt.Sprintf("paused for %s, holding received orders: %s", time.Since(since).Round(time.Second), reason)
		}
		if names := down(); len(names) > 0 {
			return fmt.Sprintf("plugins down (relaunching or disabled): %s", strings.Join(names, ", "))
		}
		return ""
	}
	d.metrics.SetReadiness(func() bool { return notReady() == "" })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := notReady(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := &http.Server{Addr: d.cfg.Metrics.Listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	// Bound here rather than in ListenAndServe, so that the log names the
	// address in use: with port 0 the kernel picks it (the tests do).
	ln, err := net.Listen("tcp", d.cfg.Metrics.Listen)
	if err != nil {
		d.logger.Error("metrics endpoint failed", "listen", d.cfg.Metrics.Listen, "error", err)
		return srv
	}
	d.logger.Info("metrics endpoint listening", "address", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.logger.Error("metrics endpoint failed", "listen", d.cfg.Metrics.Listen, "error", err)
		}
	}()
	return srv
}
