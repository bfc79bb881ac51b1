package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/sdktest"
)

func TestLiarConfig(t *testing.T) {
	tests := []struct {
		name  string
		conf  map[string]any
		field string // of the expected field error; "" for none
	}{
		{"defaults", nil, ""},
		{"every mode", map[string]any{FieldMode: ModeHang, FieldHang: "1ms"}, ""},
		{"unknown mode", map[string]any{FieldMode: "sulk"}, FieldMode},
		{"bad hang", map[string]any{FieldHang: "soon"}, FieldHang},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := sdktest.Start(t, &liar{}).Configure(tt.conf)
			switch {
			case tt.field == "" && len(errs) > 0:
				t.Fatalf("config rejected: %v", errs)
			case tt.field != "" && (len(errs) != 1 || errs[0].Field != tt.field):
				t.Fatalf("field errors %v, want one on %q", errs, tt.field)
			}
		})
	}
}

func TestLiarHandle(t *testing.T) {
	crashed := filepath.Join(t.TempDir(), "crashed")
	tests := []struct {
		name string
		conf map[string]any
		id   string
		want sdk.Result
	}{
		{"ok", nil, "1-1", sdk.Result{Effects: []sdk.Effect{{Command: "SADD", Key: KeyOrders, Args: []string{"1-1"}}}}},
		{"error matching", map[string]any{FieldMode: ModeError, FieldMatch: "-7"}, "1-7",
			sdk.Result{Err: "liar refuses order 1-7"}},
		{"error not matching", map[string]any{FieldMode: ModeError, FieldMatch: "-7"}, "1-8",
			sdk.Result{Effects: []sdk.Effect{{Command: "SADD", Key: KeyOrders, Args: []string{"1-8"}}}}},
		{"forbidden", map[string]any{FieldMode: ModeForbidden}, "1-1", sdk.Result{Effects: []sdk.Effect{
			{Command: "SADD", Key: KeyOrders, Args: []string{"1-1"}}, {Command: "DEL", Key: KeyForbidden}}}},
		{"outside", map[string]any{FieldMode: ModeOutside}, "1-1", sdk.Result{Effects: []sdk.Effect{
			{Command: "SADD", Key: KeyOrders, Args: []string{"1-1"}}, {Command: "SADD", Key: KeyOutside, Args: []string{"1-1"}}}}},
		{"hang", map[string]any{FieldMode: ModeHang, FieldHang: "1ms"}, "1-1",
			sdk.Result{Effects: []sdk.Effect{{Command: "SADD", Key: KeyOrders, Args: []string{"1-1"}}}}},
		// The crash file exists, so the plugin behaves instead of exiting.
		{"crashed already", map[string]any{FieldMode: ModeCrash, FieldCrashFile: crashed}, "1-1",
			sdk.Result{Effects: []sdk.Effect{{Command: "SADD", Key: KeyOrders, Args: []string{"1-1"}}}}},
	}
	// Why the host refuses a case's effects; the other cases' it takes.
	refused := map[string]string{
		"forbidden": `command "DEL" is not allowed`,
		"outside":   "key is outside the plugin's patterns",
	}
	if err := writeEmpty(crashed); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := sdktest.Start(t, &liar{})
			h.MustConfigure(tt.conf)
			// Raw: the liar's lies are what the host's refusals are tested with.
			got := h.ProcessRaw(sdk.Order{ID: tt.id, TS: 1, Qty: 1, Event: "e", Who: "w"})
			if len(got) != 1 || !reflect.DeepEqual(normal(got[0]), normal(tt.want)) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			err := h.Refused(got[0].Effects)
			if why := refused[tt.name]; why == "" && err != nil || why != "" && (err == nil || !strings.Contains(err.Error(), why)) {
				t.Errorf("Refused = %v, want %q", err, why)
			}
		})
	}
}

// normal makes nil and empty argument lists compare equal.
func normal(r sdk.Result) sdk.Result {
	for i := range r.Effects {
		if len(r.Effects[i].Args) == 0 {
			r.Effects[i].Args = nil
		}
	}
	if len(r.Effects) == 0 {
		r.Effects = nil
	}
	return r
}

func writeEmpty(path string) error { return os.WriteFile(path, nil, 0o600) }
