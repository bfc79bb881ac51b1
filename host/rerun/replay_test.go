package rerun

import (
	"reflect"
	"testing"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/orders"
)

func TestPlanReplay(t *testing.T) {
	cfg := &config.Config{
		Source: config.Source{Kind: "pubsub", Channels: []string{"orders", "refunds"}, IDPrefixes: map[string]string{"refunds": "R-"}},
		Plugins: []config.Plugin{
			{Name: "a", Channels: []string{"orders", "refunds"}},
			{Name: "b", Channels: []string{"orders"}},
			{Name: "c", Channels: []string{"refunds"}},
		},
	}
	entry := func(id, plugin, channel string) deadletter.Entry {
		return deadletter.Entry{StreamID: "1-" + id, OrderID: id, Plugin: plugin, Channel: channel}
	}
	tests := []struct {
		name    string
		entries []deadletter.Entry
		done    map[string]map[string]bool
		refs    []orders.Ref
		plugins []string
		skipped []string // stream ids
	}{
		{
			name:    "plugin entry goes to its plugin alone",
			entries: []deadletter.Entry{entry("1", "b", "orders")},
			refs:    []orders.Ref{{ID: "1", Channel: "orders", Only: []string{"b"}, Replays: "1-1"}},
			plugins: []string{"b"},
		},
		{
			name:    "plugin no longer configured is skipped",
			entries: []deadletter.Entry{entry("1", "gone", "orders"), entry("2", "a", "orders")},
			refs:    []orders.Ref{{ID: "2", Channel: "orders", Only: []string{"a"}, Replays: "1-2"}},
			plugins: []string{"a"},
			skipped: []string{"1-1"},
		},
		{
			name:    "bad order goes to every listener of its channel",
			entries: []deadletter.Entry{entry("1", "", "refunds")},
			refs:    []orders.Ref{{ID: "1", Channel: "refunds", Only: []string{"a", "c"}, Replays: "1-1"}},
			plugins: []string{"a", "c"},
		},
		{
			name:    "bad order skips the listeners that applied it since",
			entries: []deadletter.Entry{entry("1", "", "orders")},
			done:    map[string]map[string]bool{"1": {"a": true}},
			refs:    []orders.Ref{{ID: "1", Channel: "orders", Only: []string{"b"}, Replays: "1-1"}},
			plugins: []string{"b"},
		},
		{
			name:    "bad order applied by all still goes through, to be deleted",
			entries: []deadletter.Entry{entry("1", "", "orders")},
			done:    map[string]map[string]bool{"1": {"a": true, "b": true}},
			refs:    []orders.Ref{{ID: "1", Channel: "orders", Only: []string{"a", "b"}, Replays: "1-1"}},
			plugins: []string{"a", "b"},
		},
		{
			name:    "bad order of unknown channel goes to the plugins on every channel, channel kept",
			entries: []deadletter.Entry{entry("1", "", "")},
			refs:    []orders.Ref{{ID: "1", Channel: "", Only: []string{"a"}, Replays: "1-1"}},
			plugins: []string{"a"},
		},
		{
			name:    "id prefix tells the channel of an entry without one",
			entries: []deadletter.Entry{entry("R-1", "", ""), entry("R-2", "c", "")},
			refs: []orders.Ref{
				{ID: "R-1", Channel: "", Only: []string{"a", "c"}, Replays: "1-R-1"},
				{ID: "R-2", Channel: "", Only: []string{"c"}, Replays: "1-R-2"},
			},
			plugins: []string{"a", "c"},
		},
		{
			name:    "plugin entry of unknown channel for a plugin on some channels is skipped",
			entries: []deadletter.Entry{entry("1", "b", ""), entry("2", "a", "")},
			refs:    []orders.Ref{{ID: "2", Channel: "", Only: []string{"a"}, Replays: "1-2"}},
			plugins: []string{"a"},
			skipped: []string{"1-1"},
		},
		{
			name:    "plugin entry on a channel the plugin no longer reads is skipped",
			entries: []deadletter.Entry{entry("1", "c", "orders")},
			skipped: []string{"1-1"},
		},
		{
			name:    "bad order on a channel nobody reads is skipped",
			entries: []deadletter.Entry{entry("1", "", "old")},
			skipped: []string{"1-1"},
		},
		{
			name:    "plugins in config order, each once, refs oldest first",
			entries: []deadletter.Entry{entry("1", "c", "refunds"), entry("2", "a", "orders"), entry("3", "c", "refunds")},
			refs: []orders.Ref{
				{ID: "1", Channel: "refunds", Only: []string{"c"}, Replays: "1-1"},
				{ID: "2", Channel: "orders", Only: []string{"a"}, Replays: "1-2"},
				{ID: "3", Channel: "refunds", Only: []string{"c"}, Replays: "1-3"},
			},
			plugins: []string{"a", "c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := PlanReplay(cfg, tt.entries, tt.done)
			if !reflect.DeepEqual(plan.Refs, tt.refs) {
				t.Errorf("refs = %+v\nwant   %+v", plan.Refs, tt.refs)
			}
			if !reflect.DeepEqual(plan.Plugins, tt.plugins) {
				t.Errorf("plugins = %v, want %v", plan.Plugins, tt.plugins)
			}
			var skipped []string
			for _, s := range plan.Skipped {
				skipped = append(skipped, s.Entry.StreamID)
				if s.Why == "" {
					t.Errorf("entry %s skipped without a reason", s.Entry.StreamID)
				}
			}
			if !reflect.DeepEqual(skipped, tt.skipped) {
				t.Errorf("skipped = %v, want %v", skipped, tt.skipped)
			}
		})
	}
}

func TestSortIDs(t *testing.T) {
	ids := []string{"10", "9", "b", "2020-0000002", "100", "a", "2020-0000001", "1"}
	sortIDs(ids)
	want := []string{"1", "9", "a", "b", "10", "100", "2020-0000001", "2020-0000002"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("sortIDs = %v, want %v", ids, want)
	}
}
