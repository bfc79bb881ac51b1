package rerun

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/catchup"
	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/engine"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
)

// BackfillReport is what a backfill did.
type BackfillReport struct {
	Plugin string
	// Stored is how many order hashes the scan saw; ToDo how many of them
	// the plugin had neither done nor had dead-lettered, on its channels.
	Stored, ToDo int
	// OffChannel is how many more it had not processed but may not get:
	// their channel (told by the source's id_prefixes) is not one of its
	// own, or cannot be told.
	OffChannel int
	// Sent is how many of ToDo went through the pipeline; fewer when the
	// backfill was interrupted.
	Sent int
	Counts
	Took time.Duration
}

// Interrupted reports whether orders were left for the next run.
func (r BackfillReport) Interrupted() bool { return r.Sent < r.ToDo }

// Backfill runs plugin (one of cfg's) over every stored order it has not
// processed yet, history included, until done or until stop ends; then it
// finishes the batch in flight and returns. Each order that is finished
// carries the plugin's done (or dead) marker, so running it again carries
// on where it stopped, and the daemon may run meanwhile.
//
// The plugin is registered first, as the daemon would on its first start
// with it: orders stored from then on are not history for it, so the daemon
// counts them even when it starts with the plugin only after the backfill.
func Backfill(stop context.Context, cfg *config.Config, rdb redis.UniversalClient, logger hclog.Logger, m *metrics.Metrics, plugin string, p Progress) (BackfillReport, error) {
	start := time.Now()
	rep := BackfillReport{Plugin: plugin}
	pl, ok := pluginOf(cfg, plugin)
	if !ok {
		return rep, fmt.Errorf("no plugin %q in the config", plugin)
	}
	routes := catchup.NewRoutes(cfg.Source.Channels, cfg.Source.IDPrefixes)
	if !routes.Scannable(pl.Channels) {
		return rep, fmt.Errorf("plugin %s listens on %q, some of the source's channels %q only, and a stored order does not say "+
			"where it was published: backfill would give it orders of other channels (map channels to id prefixes with source { id_prefixes })",
			plugin, pl.Channels, cfg.Source.Channels)
	}
	if p == nil {
		p = silent{}
	}
	eng, err := engine.Start(stop, cfg, rdb, logger, m, plugin)
	if err != nil {
		return rep, err
	}
	defer eng.Stop()

	scanner := catchup.NewScanner(rdb, cfg.OrderKeyPrefix)
	reg, err := catchup.NewRegistry(rdb, scanner).Enable(stop, plugin)
	if err != nil {
		return rep, err
	}
	if reg.Fresh || reg.Voided {
		logger.Info("plugin registered: orders stored from now on are new for it, the ones before are this backfill's", "plugin", plugin)
	}
	logger.Info("scanning the order hashes for orders the plugin has not processed", "plugin", plugin)
	// The ids are collected before any is sent: the total makes the
	// progress and its ETA exact, and a second scan to count first would
	// double the cost of the scan, which reads every order's markers. A
	// few million ids fit in memory.
	var refs []orders.Ref
	st, err := scanner.Scan(stop, []catchup.Want{{Plugin: plugin, History: true}}, func(found []catchup.Unfinished) error {
		for _, u := range found {
			// The channel is "" when it cannot be told: a dead letter then
			// says so rather than name one at random.
			ch := routes.ChannelOf(u.ID)
			if !routes.May(pl.Channels, ch) {
				rep.OffChannel++
				continue
			}
			refs = append(refs, orders.Ref{ID: u.ID, Channel: ch, Only: []string{plugin}})
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	rep.Stored, rep.ToDo = st.Keys, len(refs)
	logger.Info("scan done", "plugin", plugin, "orders_stored", st.Keys, "to_do", len(refs), "off_channel", rep.OffChannel,
		"took", time.Since(start).Round(time.Millisecond))
	if stop.Err() != nil || len(refs) == 0 {
		rep.Took = time.Since(start)
		return rep, nil
	}
	sortRefs(refs)
	rep.Sent, err = drive(stop, eng, refs, p)
	rep.Counts = countsOf(eng.Pipeline.Outcomes())
	rep.Took = time.Since(start)
	return rep, err
}

// sortIDs puts ids in a repeatable order, shorter first so that numeric
// ids go in numeric order: SCAN's order changes from run to run, and
// increments are easier to follow (and float sums to reproduce) in order.
func sortIDs(ids []string) {
	slices.SortFunc(ids, compareIDs)
}

// sortRefs is sortIDs for refs.
func sortRefs(refs []orders.Ref) {
	slices.SortFunc(refs, func(a, b orders.Ref) int { return compareIDs(a.ID, b.ID) })
}

func compareIDs(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

func pluginOf(cfg *config.Config, name string) (config.Plugin, bool) {
	for _, p := range cfg.Plugins {
		if p.Name == name {
			return p, true
		}
	}
	return config.Plugin{}, false
}
