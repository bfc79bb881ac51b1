package rerun

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/catchup"
	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/engine"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
)

// Skipped is a dead letter a replay leaves where it is, and why.
type Skipped struct {
	Entry deadletter.Entry
	Why   string
}

// ReplayPlan is what a replay does with its entries.
type ReplayPlan struct {
	// Refs are the entries to send, oldest first; each deletes its entry
	// in the atomic step that finishes it.
	Refs []orders.Ref
	// Plugins are the plugins the refs need, in config order.
	Plugins []string
	Skipped []Skipped
}

// PlanReplay decides how each entry goes back through the pipeline.
//
// An entry keeps its channel, "" included (catch-up and backfill could not
// tell it). A plugin may get an entry only when it listens on that channel;
// for "" the source's id_prefixes may tell the channel, and otherwise only
// a plugin on every channel of the source may (see catchup.Routes).
//
// An entry for a plugin goes to that plugin alone; one whose plugin is no
// longer in cfg, or no longer listens on the entry's channel, is skipped.
// An entry for a bad order (no plugin) goes to the plugins that may get it
// whose done marker the order lacks (done says which it has; nil means
// none): a plugin that applied the order since, after a fixed hash was
// published again, has nothing to do. When every one has, the order still
// goes to all of them, so that the pipeline finds them done and deletes the
// entry.
func PlanReplay(cfg *config.Config, entries []deadletter.Entry, done map[string]map[string]bool) ReplayPlan {
	var plan ReplayPlan
	need := map[string]bool{}
	routes := catchup.NewRoutes(cfg.Source.Channels, cfg.Source.IDPrefixes)
	for _, e := range entries {
		ref := orders.Ref{ID: e.OrderID, Channel: e.Channel, Replays: e.StreamID}
		channel := e.Channel
		if channel == "" {
			channel = routes.ChannelOf(e.OrderID)
		}
		if e.Plugin != "" {
			p, ok := pluginOf(cfg, e.Plugin)
			if !ok {
				plan.Skipped = append(plan.Skipped, Skipped{e, fmt.Sprintf("plugin %q is not in the config", e.Plugin)})
				continue
			}
			if !routes.May(p.Channels, channel) {
				plan.Skipped = append(plan.Skipped, Skipped{e, fmt.Sprintf("plugin %q does not listen on %s", e.Plugin, describe(channel))})
				continue
			}
			ref.Only = []string{e.Plugin}
		} else {
			listening, undone := listeners(cfg, routes, channel, done[e.OrderID])
			if len(listening) == 0 {
				plan.Skipped = append(plan.Skipped, Skipped{e, fmt.Sprintf("no plugin in the config listens on %s", describe(channel))})
				continue
			}
			ref.Only = undone
			if len(undone) == 0 {
				ref.Only = listening
			}
		}
		for _, p := range ref.Only {
			need[p] = true
		}
		plan.Refs = append(plan.Refs, ref)
	}
	for _, p := range cfg.Plugins {
		if need[p.Name] {
			plan.Plugins = append(plan.Plugins, p.Name)
		}
	}
	return plan
}

// describe names channel for a reason: "" is an unknown one.
func describe(channel string) string {
	if channel == "" {
		return "every channel of the source (the entry's channel is unknown)"
	}
	return fmt.Sprintf("channel %q", channel)
}

// listeners returns cfg's plugins that may get an order published on
// channel, and those of them not in done.
func listeners(cfg *config.Config, routes catchup.Routes, channel string, done map[string]bool) (listening, undone []string) {
	for _, p := range cfg.Plugins {
		if !routes.May(p.Channels, channel) {
			continue
		}
		listening = append(listening, p.Name)
		if !done[p.Name] {
			undone = append(undone, p.Name)
		}
	}
	return listening, undone
}

// ReplayReport is what a replay did.
type ReplayReport struct {
	// Sent is how many entries went back through the pipeline; Planned
	// how many were to (fewer were sent when the replay was interrupted).
	Sent, Planned int
	Skipped       []Skipped
	// Counts are (plugin, order) pairs: a bad order's entry may stand for
	// several plugins.
	Counts
}

// Replay sends entries back through the pipeline with just the plugins
// they need, until all are sent or stop ends; then it finishes what it sent
// and returns. Each sent entry is deleted from the dead-letter stream in the
// atomic step that applies its effects, or that dead-letters it anew. A
// (plugin, order) pair that is done already writes nothing, so replaying an
// entry twice counts it once.
func Replay(stop context.Context, cfg *config.Config, rdb redis.UniversalClient, logger hclog.Logger, m *metrics.Metrics, entries []deadletter.Entry) (ReplayReport, error) {
	done, err := readDone(stop, rdb, cfg, entries)
	if err != nil {
		return ReplayReport{}, err
	}
	plan := PlanReplay(cfg, entries, done)
	rep := ReplayReport{Planned: len(plan.Refs), Skipped: plan.Skipped}
	for _, s := range plan.Skipped {
		logger.Warn("dead letter left in the stream", "entry", s.Entry.StreamID, "id", s.Entry.OrderID, "plugin", s.Entry.Plugin, "why", s.Why)
	}
	if len(plan.Refs) == 0 {
		return rep, nil
	}
	eng, err := engine.Start(stop, cfg, rdb, logger, m, plan.Plugins...)
	if err != nil {
		return rep, err
	}
	defer eng.Stop()
	rep.Sent, err = drive(stop, eng, plan.Refs, silent{})
	rep.Counts = countsOf(eng.Pipeline.Outcomes())
	return rep, err
}

// readDone reads, for the bad orders among entries, which plugins' done
// markers their hashes hold: one pipelined HMGET per order.
func readDone(ctx context.Context, rdb redis.UniversalClient, cfg *config.Config, entries []deadletter.Entry) (map[string]map[string]bool, error) {
	var ids []string
	for _, e := range entries {
		if e.Plugin == "" {
			ids = append(ids, e.OrderID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	fields := make([]string, len(cfg.Plugins), len(cfg.Plugins)+1)
	for i, p := range cfg.Plugins {
		fields[i] = keyspace.DoneField(p.Name)
	}
	fields = append(fields, keyspace.DoneListField)
	pipe := rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, cfg.OrderKeyPrefix+id, fields...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		if err := orders.RoundTripError(cmds); err != nil {
			return nil, fmt.Errorf("read done markers of %d orders: %w", len(ids), err)
		}
	}
	out := map[string]map[string]bool{}
	for i, c := range cmds {
		vals, err := c.Result()
		if err != nil {
			continue // not a hash: nothing is done
		}
		list, _ := vals[len(cfg.Plugins)].(string)
		for j, v := range vals[:len(cfg.Plugins)] {
			if v != nil || keyspace.DoneListHolds(list, cfg.Plugins[j].Name) {
				if out[ids[i]] == nil {
					out[ids[i]] = map[string]bool{}
				}
				out[ids[i]][cfg.Plugins[j].Name] = true
			}
		}
	}
	return out, nil
}
