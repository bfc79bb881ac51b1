package daemon

import (
	"context"
	"net"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/engine"
	"github.com/eventhost/eventhost/host/report"
	"github.com/eventhost/eventhost/host/ui"
)

// dashboardHost answers the dashboard's questions from the running host,
// afresh each time: a plugin a reload added shows up at the next refresh.
type dashboardHost struct {
	d   *Daemon
	eng *engine.Engine
}

var _ ui.Host = dashboardHost{}

func (h dashboardHost) Views() []report.Plugin {
	descs := h.eng.Descriptions()
	out := make([]report.Plugin, len(descs))
	for i, d := range descs {
		out[i] = report.Plugin{Name: d.Name, Views: d.Views}
	}
	return out
}

func (h dashboardHost) Health() ui.Health {
	reason, since := h.eng.Pipeline.Paused()
	down := h.eng.Down()
	health := ui.Health{Paused: reason, Ready: h.d.Ready() && reason == "" && len(down) == 0}
	if reason != "" {
		health.PausedSince = since
	}
	for _, name := range h.eng.Names() {
		health.Plugins = append(health.Plugins, ui.Plugin{Name: name, Up: !slices.Contains(down, name)})
	}
	return health
}

// serveDashboard serves the dashboard on the ui block's address until the
// returned func is called or ctx ends. A listener that cannot be bound is
// logged, not fatal: the dashboard is for people, the host goes on.
func (d *Daemon) serveDashboard(ctx context.Context, rdb redis.UniversalClient, eng *engine.Engine) (stop func()) {
	cfg := d.config().UI
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		d.logger.Error("dashboard failed", "listen", cfg.Listen, "error", err)
		return func() {}
	}
	// Logged with the address bound: with port 0 the kernel picks it.
	d.logger.Info("dashboard listening", "address", ln.Addr().String())
	srv := ui.New(rdb, dashboardHost{d: d, eng: eng}, d.config().DeadLetter.Stream)
	srv.Refresh = cfg.Refresh
	srv.Logger = d.logger.Named("ui")
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, ln); err != nil {
			d.logger.Error("dashboard failed", "error", err)
		}
	}()
	return func() { cancel(); <-done }
}
