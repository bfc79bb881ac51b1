package topcustomers_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/host/internal/testplugins/topcustomers"
	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/sdktest"
)

func zincrby(key, incr, member string) sdk.Effect {
	return sdk.Effect{Command: "ZINCRBY", Key: key, Args: []string{incr, member}}
}

func TestLeaderboard(t *testing.T) {
	order := sdk.Order{ID: "42", TS: 1700000000, Qty: 3, Cost: 12.5, Event: "rock", Who: "ann"}
	tests := []struct {
		name  string
		conf  map[string]any
		order sdk.Order
		want  []sdk.Effect
	}{
		{"defaults: cost into top_customers", map[string]any{}, order,
			[]sdk.Effect{zincrby("top_customers", "12.5", "ann")}},
		{"score by qty", map[string]any{"score": "qty"}, order,
			[]sdk.Effect{zincrby("top_customers", "3", "ann")}},
		{"another key inside the pattern", map[string]any{"key": "top_customers:v2"}, order,
			[]sdk.Effect{zincrby("top_customers:v2", "12.5", "ann")}},
		{"customer with colon and space", map[string]any{"score": "qty"},
			sdk.Order{ID: "7", TS: 1, Qty: 1, Cost: 0, Event: "e", Who: "acme:eu bob"},
			[]sdk.Effect{zincrby("top_customers", "1", "acme:eu bob")}},
		{"free order scores 0 by cost", nil,
			sdk.Order{ID: "8", TS: 1, Qty: 2, Cost: 0, Event: "e", Who: "cy"},
			[]sdk.Effect{zincrby("top_customers", "0", "cy")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := sdktest.Start(t, topcustomers.New())
			h.MustConfigure(tt.conf)
			got := h.Effects(tt.order)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("effects = %#v, want %#v", got, tt.want)
			}
			h.CheckKeys(got)
		})
	}
}

func TestLeaderboardRejectsConfig(t *testing.T) {
	tests := []struct {
		name string
		conf map[string]any
		want []string // fields named, in order
	}{
		{"unknown score", map[string]any{"score": "price"}, []string{"score"}},
		{"key outside the pattern", map[string]any{"key": "leaders"}, []string{"key"}},
		{"both", map[string]any{"score": "", "key": "x"}, []string{"score", "key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := sdktest.Start(t, topcustomers.New()).Configure(tt.conf)
			var fields []string
			for _, e := range errs {
				fields = append(fields, e.Field)
				if e.Message == "" || !strings.Contains(e.Message, tt.conf[e.Field].(string)) {
					t.Errorf("field error %q does not quote the value %q", e.Message, tt.conf[e.Field])
				}
			}
			if !reflect.DeepEqual(fields, tt.want) {
				t.Errorf("field errors on %q, want %q (%v)", fields, tt.want, errs)
			}
		})
	}
}

func TestLeaderboardDescription(t *testing.T) {
	d := sdktest.Start(t, topcustomers.New()).Description()
	if d.Name != topcustomers.Name || !reflect.DeepEqual(d.Keys, []string{"top_customers*"}) {
		t.Errorf("description = %s %q, want %s [top_customers*]", d.Name, d.Keys, topcustomers.Name)
	}
	var fields []string
	for _, f := range d.Config {
		fields = append(fields, f.Name)
	}
	if want := []string{"score", "key"}; !reflect.DeepEqual(fields, want) {
		t.Errorf("config fields = %q, want %q", fields, want)
	}
}

// The leaderboard's view follows the key and score configured.
func TestLeaderboardViews(t *testing.T) {
	for _, tt := range []struct {
		conf map[string]any
		want sdk.LeaderboardView
	}{
		{nil, sdk.LeaderboardView{Key: "top_customers", MemberLabel: "CUSTOMER", ScoreLabel: "SPENT", Decimals: 2}},
		{map[string]any{"key": "top_customers:qty", "score": "qty"},
			sdk.LeaderboardView{Key: "top_customers:qty", MemberLabel: "CUSTOMER", ScoreLabel: "TICKETS"}},
	} {
		h := sdktest.Start(t, topcustomers.New())
		h.MustConfigure(tt.conf)
		views := h.Description().Views
		if len(views) != 1 || views[0].Leaderboard == nil || !reflect.DeepEqual(*views[0].Leaderboard, tt.want) {
			t.Errorf("config %v: views = %+v, want one leaderboard %+v", tt.conf, views, tt.want)
		}
	}
}
