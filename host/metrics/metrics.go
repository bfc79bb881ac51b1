// Package metrics holds eventhost's Prometheus collectors. They live on a
// registry of their own, passed to whoever counts, so tests and several hosts
// in one process never share counters.
package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/eventhost/eventhost/host/version"
)

// Metrics is the set of eventhost's collectors.
type Metrics struct {
	Registry *prometheus.Registry

	OrdersReceived     *prometheus.CounterVec // channel
	OrdersDropped      *prometheus.CounterVec // channel
	OrdersLoaded       *prometheus.CounterVec // channel
	OrdersRejected     *prometheus.CounterVec // channel, reason
	OrdersProcessed    *prometheus.CounterVec // channel, plugin
	OrdersDuplicate    *prometheus.CounterVec // plugin
	OrdersDeadLettered *prometheus.CounterVec // channel, plugin, reason
	OrdersRetried      *prometheus.CounterVec // plugin
	OrderSeconds       prometheus.Histogram
	BatchSize          prometheus.Histogram
	BatchSeconds       prometheus.Histogram
	CatchUpRuns        *prometheus.CounterVec // result
	CatchUpOrders      prometheus.Counter
	CatchUpSeconds     prometheus.Histogram
	CatchUpRunning     prometheus.Gauge
	StreamPending      prometheus.Gauge
	StreamLag          prometheus.Gauge
	StreamClaimed      prometheus.Counter
	PluginRPCSeconds   *prometheus.HistogramVec // plugin
	PluginErrors       *prometheus.CounterVec   // plugin, kind
	PluginRestarts     *prometheus.CounterVec   // plugin
	PluginUp           *prometheus.GaugeVec     // plugin
	RedisErrors        *prometheus.CounterVec   // op
	Paused             *prometheus.GaugeVec     // reason
	Pauses             *prometheus.CounterVec   // reason
	Reconnects         prometheus.Counter
	Reloads            *prometheus.CounterVec // result
	SandboxProtection  *prometheus.GaugeVec   // name
	// BuildInfo is 1, labelled with the build's version, commit and Go
	// version, so that dashboards can tell which build each host runs.
	BuildInfo *prometheus.GaugeVec // version, commit, goversion
	// Ready is 1 while /readyz answers 200: what SetReadiness was given
	// says so (0 until it is called).
	Ready prometheus.GaugeFunc

	// readiness is the daemon's readiness check, read at each scrape.
	readiness atomic.Pointer[func() bool]
}

// SetReadiness makes the eventhost_ready gauge read ready at each scrape.
// The daemon calls it once its metrics endpoint serves /readyz, so that an
// alert on the gauge and a probe of /readyz agree.
func (m *Metrics) SetReadiness(ready func() bool) { m.readiness.Store(&ready) }

// New creates the collectors and registers them, with Go and process
// collectors, on a new registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		OrdersReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_orders_received_total", Help: "Order ids received from the source.",
		}, []string{"channel"}),
		OrdersDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_orders_dropped_total", Help: "Order ids the Pub/Sub source dropped because the intake buffer was full; a catch-up finds them once it drains.",
		}, []string{"channel"}),
		OrdersLoaded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_orders_loaded_total", Help: "Orders loaded and valid.",
		}, []string{"channel"}),
		OrdersRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_orders_rejected_total", Help: "Orders dead-lettered before any plugin saw them (missing or malformed hash).",
		}, []string{"channel"}),
		OrdersProcessed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_orders_processed_total", Help: "(plugin, order) pairs whose effects were applied.",
		}, []string{"channel", "plugin"}),
		OrdersDuplicate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_orders_duplicate_total", Help: "(plugin, order) pairs skipped because they were already applied.",
		}, []string{"plugin"}),
		OrdersDeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_orders_dead_lettered_total", Help: "(plugin, order) pairs sent to the dead-letter stream; plugin is empty for a bad order.",
		}, []string{"channel", "plugin", "reason"}),
		OrdersRetried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_orders_retried_total", Help: "(plugin, order) pairs scheduled for another try after a transient plugin error.",
		}, []string{"plugin"}),
		OrderSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventhost_order_seconds", Help: "End-to-end latency: from receiving an order id to applying its batch.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20),
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventhost_batch_orders", Help: "Orders per batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		BatchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventhost_batch_seconds", Help: "Time to load, dispatch and apply one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		PluginRPCSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventhost_plugin_rpc_seconds", Help: "Duration of one Process call on a plugin.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18),
		}, []string{"plugin"}),
		PluginErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_plugin_errors_total", Help: "Failed Process calls by kind (crash, timeout, protocol).",
		}, []string{"plugin", "kind"}),
		PluginRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_plugin_restarts_total", Help: "Plugin process relaunches.",
		}, []string{"plugin"}),
		PluginUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventhost_plugin_up", Help: "1 while the plugin's process answers, 0 while it is down or disabled.",
		}, []string{"plugin"}),
		RedisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_redis_errors_total", Help: "Redis operations that failed (and were retried).",
		}, []string{"op"}),
		Paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventhost_paused", Help: "1 while the pipeline is paused because Redis does not take its writes, by reason (OOM, NOPERM, MISCONF, READONLY, connection, …).",
		}, []string{"reason"}),
		Pauses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_pauses_total", Help: "Times the pipeline paused because Redis did not take its writes, by reason.",
		}, []string{"reason"}),
		Reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventhost_pubsub_reconnects_total", Help: "Pub/Sub resubscriptions after a lost connection.",
		}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_reloads_total", Help: "Config reloads (SIGHUP) by result: applied, or rejected with the old config kept.",
		}, []string{"result"}),
		CatchUpRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventhost_catchup_runs_total", Help: "Catch-up scans for unfinished orders, by result (done, failed).",
		}, []string{"result"}),
		CatchUpOrders: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventhost_catchup_orders_total", Help: "Unfinished orders found by catch-up and sent through the pipeline.",
		}),
		CatchUpSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventhost_catchup_seconds", Help: "Duration of one catch-up scan.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		CatchUpRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventhost_catchup_running", Help: "1 while a catch-up scan runs (the host is ready meanwhile).",
		}),
		StreamPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventhost_stream_pending", Help: "Entries delivered to the consumer group but not yet acknowledged (all consumers).",
		}),
		StreamLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventhost_stream_lag", Help: "Entries in the stream not yet delivered to the consumer group.",
		}),
		SandboxProtection: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventhost_sandbox_protection", Help: "1 for each plugin sandbox protection this host applies, 0 for each it cannot (see the start-up warnings).",
		}, []string{"name"}),
		StreamClaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventhost_stream_claimed_total", Help: "Pending entries claimed from idle consumers (XAUTOCLAIM).",
		}),
	}
	m.BuildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eventhost_build_info", Help: "Always 1; the labels say which build of eventhost runs (eventhost version).",
	}, []string{"version", "commit", "goversion"})
	m.Ready = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "eventhost_ready", Help: "1 while the host is ready (/readyz answers 200): subscribed with every plugin registered, not paused, every plugin up.",
	}, func() float64 {
		if f := m.readiness.Load(); f != nil && (*f)() {
			return 1
		}
		return 0
	})
	b := version.Get()
	m.BuildInfo.WithLabelValues(b.Version, b.Commit, b.GoVersion).Set(1)
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.OrdersReceived, m.OrdersDropped, m.OrdersLoaded, m.OrdersRejected, m.OrdersProcessed, m.OrdersDuplicate,
		m.OrdersDeadLettered, m.BatchSize, m.BatchSeconds, m.PluginRPCSeconds, m.PluginErrors,
		m.PluginRestarts, m.PluginUp, m.RedisErrors, m.Reconnects, m.OrdersRetried, m.OrderSeconds,
		m.CatchUpRuns, m.CatchUpOrders, m.CatchUpSeconds, m.CatchUpRunning, m.StreamPending, m.StreamLag, m.StreamClaimed,
		m.Reloads, m.Paused, m.Pauses, m.SandboxProtection, m.BuildInfo, m.Ready,
	)
	return m
}
