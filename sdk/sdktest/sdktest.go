// Package sdktest runs a plugin through the real gRPC adapter, in process and
// without Redis, so a plugin's tests exercise exactly what the host will call.
package sdktest

import (
	"context"
	"testing"

	"github.com/hashicorp/go-plugin"

	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/client"
)

// Harness is a plugin served over gRPC inside the test process.
type Harness struct {
	t      testing.TB
	client *client.Client
	desc   sdk.Description
}

// Start serves p over gRPC and connects to it. The connection is closed when
// the test ends.
func Start(t testing.TB, p sdk.Plugin) *Harness {
	t.Helper()
	conn, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{sdk.PluginKey: &sdk.GRPCPlugin{Impl: p}})
	t.Cleanup(func() { _ = conn.Close() })
	raw, err := conn.Dispense(sdk.PluginKey)
	if err != nil {
		t.Fatalf("dispense plugin: %v", err)
	}
	c, err := client.FromDispensed(raw)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := c.Describe(context.Background())
	if err != nil {
		t.Fatalf("describe plugin: %v", err)
	}
	return &Harness{t: t, client: c, desc: desc}
}

// Description is what the plugin said about itself over the wire: after a
// successful Configure, with the views of that configuration, as the host
// reads them (and checks them: a view the host would refuse fails the test).
func (h *Harness) Description() sdk.Description { return h.desc }

// Configure sends values as the host would after decoding the plugin's config
// block, and returns the plugin's field errors (nil when it accepted them).
// When it accepted them, the plugin is described again, as the host does
// for the views.
func (h *Harness) Configure(values map[string]any) []sdk.FieldError {
	h.t.Helper()
	errs, err := h.client.Configure(context.Background(), values)
	if err != nil {
		h.t.Fatalf("configure plugin: %v", err)
	}
	if len(errs) == 0 {
		if h.desc, err = h.client.Describe(context.Background()); err != nil {
			h.t.Fatalf("describe plugin after configure: %v", err)
		}
	}
	return errs
}

// MustConfigure is Configure that fails the test on any field error.
func (h *Harness) MustConfigure(values map[string]any) {
	h.t.Helper()
	if errs := h.Configure(values); len(errs) > 0 {
		h.t.Fatalf("plugin rejected its config: %v", errs)
	}
}

// Process sends orders as one batch and returns one result per order.
func (h *Harness) Process(orders ...sdk.Order) []sdk.Result {
	h.t.Helper()
	results, err := h.client.Process(context.Background(), orders)
	if err != nil {
		h.t.Fatalf("process batch: %v", err)
	}
	return results
}

// Effects processes a single order and returns its effects, failing the test
// when the plugin reports an error for it.
func (h *Harness) Effects(o sdk.Order) []sdk.Effect {
	h.t.Helper()
	r := h.Process(o)[0]
	if r.Err != "" {
		h.t.Fatalf("plugin failed order %s: %s", o.ID, r.Err)
	}
	return r.Effects
}

// CheckKeys fails the test when an effect in effects writes a key outside
// the plugin's declared patterns — the same check the host makes.
func (h *Harness) CheckKeys(effects []sdk.Effect) {
	h.t.Helper()
	for _, e := range effects {
		if !sdk.MatchesAny(h.desc.Keys, e.Key) {
			h.t.Errorf("effect %s %s writes a key outside the declared patterns %q", e.Command, e.Key, h.desc.Keys)
		}
	}
}
