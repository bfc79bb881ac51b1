package sdk_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/sdk"
)

// touchy records each order in a set, panics on order "boom" and refuses
// order "no".
type touchy struct{}

var _ sdk.Plugin = touchy{}

func (touchy) Describe() sdk.Description {
	return sdk.Description{Name: "touchy", Keys: []string{"seen:*"}}
}
func (touchy) Configure(sdk.Config) error { return nil }
func (touchy) Handle(o sdk.Order, out *sdk.Effects) error {
	switch o.ID {
	case "boom":
		out.SAdd("seen:partial", o.ID) // must not leak into the result
		panic("kaboom")
	case "no":
		return errors.New("cannot handle this one")
	case "never":
		return fmt.Errorf("order %s: %w", o.ID, sdk.Permanent(errors.New("never valid")))
	}
	out.SAdd("seen:"+o.Event, o.ID)
	out.IncrBy("seen:count", o.Qty)
	return nil
}

func TestProcessBatch(t *testing.T) {
	ok := func(id, event string, qty int64) sdk.Order { return sdk.Order{ID: id, Event: event, Qty: qty} }
	tests := []struct {
		name        string
		orders      []sdk.Order
		wantEffects [][]sdk.Effect
		wantErr     []string // substring per order; "" means no error
		// wantPermanent lists the orders whose error must be permanent.
		wantPermanent []bool
	}{
		{name: "empty batch", orders: nil, wantEffects: [][]sdk.Effect{}, wantErr: []string{}},
		{
			name:   "panic fails only its order",
			orders: []sdk.Order{ok("1", "a", 2), {ID: "boom"}, ok("3", "b", 1)},
			wantEffects: [][]sdk.Effect{
				{{Command: "SADD", Key: "seen:a", Args: []string{"1"}}, {Command: "INCRBY", Key: "seen:count", Args: []string{"2"}}},
				nil,
				{{Command: "SADD", Key: "seen:b", Args: []string{"3"}}, {Command: "INCRBY", Key: "seen:count", Args: []string{"1"}}},
			},
			wantErr:       []string{"", "panic handling order boom: kaboom", ""},
			wantPermanent: []bool{false, true, false},
		},
		{
			name:        "error fails only its order",
			orders:      []sdk.Order{{ID: "no"}, ok("2", "c", 5)},
			wantEffects: [][]sdk.Effect{nil, {{Command: "SADD", Key: "seen:c", Args: []string{"2"}}, {Command: "INCRBY", Key: "seen:count", Args: []string{"5"}}}},
			wantErr:     []string{"cannot handle this one", ""},
		},
		{
			name:          "a wrapped permanent error stays permanent",
			orders:        []sdk.Order{{ID: "never"}, {ID: "no"}},
			wantEffects:   [][]sdk.Effect{nil, nil},
			wantErr:       []string{"order never: never valid", "cannot handle this one"},
			wantPermanent: []bool{true, false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			results := sdk.ProcessBatch(touchy{}, tt.orders)
			if len(results) != len(tt.orders) {
				t.Fatalf("got %d results for %d orders", len(results), len(tt.orders))
			}
			for i, r := range results {
				if !reflect.DeepEqual(r.Effects, tt.wantEffects[i]) {
					t.Errorf("order %d effects = %#v, want %#v", i, r.Effects, tt.wantEffects[i])
				}
				if tt.wantErr[i] == "" && r.Err != "" {
					t.Errorf("order %d: unexpected error %q", i, r.Err)
				}
				if tt.wantErr[i] != "" && !strings.Contains(r.Err, tt.wantErr[i]) {
					t.Errorf("order %d: error %q does not contain %q", i, r.Err, tt.wantErr[i])
				}
				if want := i < len(tt.wantPermanent) && tt.wantPermanent[i]; r.Permanent != want {
					t.Errorf("order %d: permanent = %v, want %v", i, r.Permanent, want)
				}
			}
		})
	}
}

// Effects of one order must not be overwritten by the next: ProcessBatch
// reuses one Effects buffer.
func TestProcessBatchResultsDoNotAlias(t *testing.T) {
	results := sdk.ProcessBatch(touchy{}, []sdk.Order{{ID: "1", Event: "a", Qty: 1}, {ID: "2", Event: "b", Qty: 5}})
	if got := results[0].Effects[0].Key; got != "seen:a" {
		t.Errorf("first order's first effect key = %q after the second order, want seen:a", got)
	}
	// Effects keeps every order's arguments in one reused slice: the
	// results must hold copies.
	if got := results[0].Effects[0].Args[0]; got != "1" {
		t.Errorf("first order's first effect argument = %q after the second order, want 1", got)
	}
	if got := results[0].Effects[1].Args[0]; got != "1" {
		t.Errorf("first order's INCRBY argument = %q after the second order, want 1", got)
	}
}
