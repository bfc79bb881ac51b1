package tutorialmetrics_test

import (
	"fmt"
	"reflect"
	"testing"

	customerinvoices "github.com/eventhost/eventhost/plugins/customer-invoices"
	eventssummary "github.com/eventhost/eventhost/plugins/events-summary"
	saleshistogram "github.com/eventhost/eventhost/plugins/sales-histogram"
	tutorialmetrics "github.com/eventhost/eventhost/plugins/tutorial-metrics"
	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/sdktest"
)

// The combined plugin answers every order with exactly the three plugins'
// effects, in their order, under each histogram setting.
func TestSameEffectsAsTheThreePlugins(t *testing.T) {
	orders := make([]sdk.Order, 0, 200)
	events := []string{"Judo", "Rowing", "Sailing", "Fencing"}
	for i := range 200 {
		orders = append(orders, sdk.Order{
			ID: fmt.Sprint(1000 + i), Channel: "purchase_orders", TS: 1595000000 + int64(i)*1789,
			Qty: 1 + int64(i%8), Cost: 12.5 + float64(i%7)*3.25, Event: events[i%len(events)], Who: fmt.Sprint("customer", i%13),
		})
	}
	for _, conf := range []map[string]any{
		{},
		{"counter": "u16", "overflow": "sat", "timezone": "Asia/Tokyo"},
	} {
		combined := sdktest.Start(t, tutorialmetrics.New())
		combined.MustConfigure(conf)
		var members []*sdktest.Harness
		for _, p := range []sdk.Plugin{saleshistogram.New(), eventssummary.New(), customerinvoices.New()} {
			h := sdktest.Start(t, p)
			if p.Describe().Name == "sales-histogram" {
				h.MustConfigure(conf)
			} else {
				h.MustConfigure(nil)
			}
			members = append(members, h)
		}
		got := combined.Process(orders...)
		want := make([][]sdk.Effect, len(orders))
		for _, h := range members {
			for i, r := range h.Process(orders...) {
				if r.Err != "" {
					t.Fatalf("%s failed order %s: %s", h.Description().Name, orders[i].ID, r.Err)
				}
				want[i] = append(want[i], r.Effects...)
			}
		}
		for i, r := range got {
			if r.Err != "" || !reflect.DeepEqual(r.Effects, want[i]) {
				t.Fatalf("config %v, order %s: err %q, effects\n%v\nwant\n%v", conf, orders[i].ID, r.Err, r.Effects, want[i])
			}
		}
		// Keys and views as the members say after their Configure: the
		// histogram's follow its counter type and time zone.
		var keys []string
		var views []sdk.View
		for _, h := range members {
			keys = append(keys, h.Description().Keys...)
			views = append(views, h.Description().Views...)
		}
		d := combined.Description()
		if d.Name != "tutorial-metrics" || !reflect.DeepEqual(d.Keys, keys) {
			t.Errorf("described as %q writing %q, want tutorial-metrics writing %q", d.Name, d.Keys, keys)
		}
		if !reflect.DeepEqual(d.Views, views) {
			t.Errorf("config %v: views %+v, want %+v", conf, d.Views, views)
		}
	}
}

// The histogram's settings are checked as when it runs alone.
func TestRefusesWhatTheHistogramRefuses(t *testing.T) {
	h := sdktest.Start(t, tutorialmetrics.New())
	errs := h.Configure(map[string]any{"counter": "u99"})
	if len(errs) != 1 || errs[0].Field != "counter" {
		t.Errorf("errors %v, want one about counter", errs)
	}
}
