// Package sdktest runs a plugin through the real gRPC adapter, in process and
// without Redis, so a plugin's tests exercise exactly what the host will call.
// Every answer is checked as the host checks it (sdk.CheckEffects and the
// declared key patterns): an effect the host would refuse fails the test
// with the host's reason.
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
	// Limits are the host's limits block the plugin's effects are checked
	// against; the zero value is the host's defaults. Set it before
	// Process to test a plugin meant for other limits.
	Limits sdk.Limits
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

// Process sends orders as one batch and returns one result per order. It
// fails the test when the effects of an order would be refused by the host
// (see Refused); a result with Err set has no effects to check.
func (h *Harness) Process(orders ...sdk.Order) []sdk.Result {
	h.t.Helper()
	results := h.ProcessRaw(orders...)
	for i, r := range results {
		if r.Err != "" || i >= len(orders) {
			continue
		}
		if err := h.Refused(r.Effects); err != nil {
			h.t.Errorf("the host would refuse the effects of order %s (and dead-letter it): %v", orders[i].ID, err)
		}
	}
	return results
}

// ProcessRaw is Process without the host's checks: for plugins written to
// make the host refuse their effects, whose tests assert Refused instead.
func (h *Harness) ProcessRaw(orders ...sdk.Order) []sdk.Result {
	h.t.Helper()
	results, err := h.client.Process(context.Background(), orders)
	if err != nil {
		h.t.Fatalf("process batch: %v", err)
	}
	return results
}

// Refused returns why the host would refuse effects, one order's, or nil:
// the command and argument checks and limits of sdk.CheckEffects (against
// h.Limits), then the plugin's declared key patterns. The host also refuses
// keys it keeps for itself and keys outside the plugin block's allow_keys,
// which depend on its config.
func (h *Harness) Refused(effects []sdk.Effect) error {
	if err := sdk.CheckEffects(effects, h.Limits); err != nil {
		return err
	}
	for _, e := range effects {
		if err := sdk.CheckKey(e, h.desc.Keys); err != nil {
			return err
		}
	}
	return nil
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

// CheckKeys fails the test when an effect in effects would be refused by
// the host: a key outside the plugin's declared patterns, or a command or
// arguments sdk.CheckEffect refuses — the same checks the host makes, with
// the same reasons.
func (h *Harness) CheckKeys(effects []sdk.Effect) {
	h.t.Helper()
	for _, e := range effects {
		if err := sdk.CheckEffect(e, h.Limits); err != nil {
			h.t.Errorf("the host would refuse this effect: %v", err)
		}
		if err := sdk.CheckKey(e, h.desc.Keys); err != nil {
			h.t.Errorf("the host would refuse this effect: %v", err)
		}
	}
}
