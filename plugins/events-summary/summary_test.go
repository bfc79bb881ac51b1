package eventssummary_test

import (
	"reflect"
	"testing"

	eventssummary "github.com/eventhost/eventhost/plugins/events-summary"
	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/sdktest"
)

func TestSummary(t *testing.T) {
	tests := []struct {
		name  string
		conf  map[string]any
		order sdk.Order
		want  []sdk.Effect
	}{
		{
			name:  "tutorial order",
			conf:  map[string]any{},
			order: sdk.Order{ID: "42", TS: 1700000000, Qty: 3, Cost: 12.5, Event: "rock", Who: "ann"},
			want: []sdk.Effect{
				{Command: "SADD", Key: "sales:rock", Args: []string{"42"}},
				{Command: "HINCRBYFLOAT", Key: "sales_summary", Args: []string{"rock:total_sales", "12.5"}},
				{Command: "HINCRBY", Key: "sales_summary", Args: []string{"rock:total_tickets_sold", "3"}},
			},
		},
		{
			name:  "cost 0.1 stays short",
			conf:  nil,
			order: sdk.Order{ID: "a", TS: 1, Qty: 1, Cost: 0.1, Event: "jazz", Who: "bob"},
			want: []sdk.Effect{
				{Command: "SADD", Key: "sales:jazz", Args: []string{"a"}},
				{Command: "HINCRBYFLOAT", Key: "sales_summary", Args: []string{"jazz:total_sales", "0.1"}},
				{Command: "HINCRBY", Key: "sales_summary", Args: []string{"jazz:total_tickets_sold", "1"}},
			},
		},
		{
			name:  "free tickets and large cost without exponent",
			conf:  map[string]any{},
			order: sdk.Order{ID: "b", TS: 1, Qty: 1000, Cost: 1e21, Event: "e", Who: "w"},
			want: []sdk.Effect{
				{Command: "SADD", Key: "sales:e", Args: []string{"b"}},
				{Command: "HINCRBYFLOAT", Key: "sales_summary", Args: []string{"e:total_sales", "1000000000000000000000"}},
				{Command: "HINCRBY", Key: "sales_summary", Args: []string{"e:total_tickets_sold", "1000"}},
			},
		},
		{
			name:  "zero cost",
			conf:  map[string]any{},
			order: sdk.Order{ID: "c", TS: 1, Qty: 2, Cost: 0, Event: "e:x/y", Who: "w"},
			want: []sdk.Effect{
				{Command: "SADD", Key: "sales:e:x/y", Args: []string{"c"}},
				{Command: "HINCRBYFLOAT", Key: "sales_summary", Args: []string{"e:x/y:total_sales", "0"}},
				{Command: "HINCRBY", Key: "sales_summary", Args: []string{"e:x/y:total_tickets_sold", "2"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := sdktest.Start(t, eventssummary.New())
			h.MustConfigure(tt.conf)
			got := h.Effects(tt.order)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("effects = %#v\nwant      %#v", got, tt.want)
			}
			h.CheckKeys(got)
		})
	}
}

func TestSummaryBatch(t *testing.T) {
	h := sdktest.Start(t, eventssummary.New())
	h.MustConfigure(nil)
	results := h.Process(
		sdk.Order{ID: "1", TS: 1, Qty: 1, Cost: 1, Event: "a", Who: "w"},
		sdk.Order{ID: "2", TS: 1, Qty: 2, Cost: 2, Event: "b", Who: "w"},
	)
	if len(results) != 2 {
		t.Fatalf("got %d results, want 2", len(results))
	}
	for i, want := range []string{"sales:a", "sales:b"} {
		if results[i].Err != "" || len(results[i].Effects) != 3 || results[i].Effects[0].Key != want {
			t.Errorf("result %d = %+v, want 3 effects starting with SADD %s", i, results[i], want)
		}
	}
}

func TestSummaryDescription(t *testing.T) {
	d := sdktest.Start(t, eventssummary.New()).Description()
	if d.Name != "events-summary" {
		t.Errorf("name = %q, want events-summary", d.Name)
	}
	if want := []string{"sales_summary", "sales:*"}; !reflect.DeepEqual(d.Keys, want) {
		t.Errorf("keys = %q, want %q", d.Keys, want)
	}
	if len(d.Config) != 0 {
		t.Errorf("config schema = %v, want none", d.Config)
	}
}

func TestSummaryViews(t *testing.T) {
	d := sdktest.Start(t, eventssummary.New()).Description()
	if len(d.Views) != 1 || d.Views[0].Table == nil {
		t.Fatalf("views = %+v, want one table", d.Views)
	}
	tv := d.Views[0].Table
	if tv.Key != "sales_summary" || len(tv.Columns) != 2 || tv.Columns[tv.SortBy].Suffix != ":total_sales" ||
		tv.Columns[0].Suffix != ":total_tickets_sold" || tv.Columns[1].Decimals != 2 {
		t.Errorf("table = %+v, want sales_summary with tickets and sales (2 decimals), sorted by sales", tv)
	}
}
