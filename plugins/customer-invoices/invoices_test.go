package customerinvoices_test

import (
	"reflect"
	"testing"

	customerinvoices "github.com/eventhost/eventhost/plugins/customer-invoices"
	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/sdktest"
)

func TestInvoices(t *testing.T) {
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
			want:  []sdk.Effect{{Command: "SADD", Key: "invoices:ann", Args: []string{"42"}}},
		},
		{
			name:  "customer with colon and slash",
			conf:  nil,
			order: sdk.Order{ID: "x-1", TS: 1, Qty: 1, Cost: 1, Event: "e", Who: "acme:eu/bob"},
			want:  []sdk.Effect{{Command: "SADD", Key: "invoices:acme:eu/bob", Args: []string{"x-1"}}},
		},
		{
			name:  "extra fields are ignored",
			conf:  map[string]any{},
			order: sdk.Order{ID: "7", TS: 1, Qty: 1, Cost: 1, Event: "e", Who: "cy", Extra: map[string]string{"note": "vip"}},
			want:  []sdk.Effect{{Command: "SADD", Key: "invoices:cy", Args: []string{"7"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := sdktest.Start(t, customerinvoices.New())
			h.MustConfigure(tt.conf)
			got := h.Effects(tt.order)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("effects = %#v, want %#v", got, tt.want)
			}
			h.CheckKeys(got)
		})
	}
}

func TestInvoicesDescription(t *testing.T) {
	d := sdktest.Start(t, customerinvoices.New()).Description()
	if d.Name != "customer-invoices" {
		t.Errorf("name = %q, want customer-invoices", d.Name)
	}
	if want := []string{"invoices:*"}; !reflect.DeepEqual(d.Keys, want) {
		t.Errorf("keys = %q, want %q", d.Keys, want)
	}
	if len(d.Config) != 0 {
		t.Errorf("config schema = %v, want none", d.Config)
	}
}

func TestInvoicesViews(t *testing.T) {
	d := sdktest.Start(t, customerinvoices.New()).Description()
	want := []sdk.View{{Title: "Customers by number of invoices",
		KeyCount: &sdk.KeyCountView{Pattern: "invoices:*", SizeLabel: "INVOICES", KeysLabel: "CUSTOMERS"}}}
	if !reflect.DeepEqual(d.Views, want) {
		t.Errorf("views = %+v, want %+v", d.Views, want)
	}
}
