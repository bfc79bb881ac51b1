package sdktest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/sdk"
)

// emitter is a plugin that writes whatever effects it was built with.
type emitter struct{ effects []sdk.Effect }

var _ sdk.Plugin = (*emitter)(nil)

func (p *emitter) Describe() sdk.Description {
	return sdk.Description{Name: "emitter", Version: "1", Keys: []string{"m:*"}}
}
func (p *emitter) Configure(sdk.Config) error { return nil }
func (p *emitter) Handle(_ sdk.Order, out *sdk.Effects) error {
	for _, e := range p.effects {
		out.Add(e.Command, e.Key, e.Args...)
	}
	return nil
}

// recorder is a testing.TB that notes failures instead of failing, so a test
// can assert that the harness fails a plugin's test.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// failures runs use on a harness of p whose failures are recorded, and
// returns them.
func failures(t *testing.T, p sdk.Plugin, use func(h *Harness)) []string {
	h := Start(t, p)
	rec := &recorder{TB: t}
	h.t = rec
	done := make(chan struct{})
	go func() {
		defer close(done)
		use(h)
	}()
	<-done
	return rec.failures
}

// TestHarnessRefusesWhatTheHostRefuses: a plugin whose effects the host's
// policy would refuse fails its own sdktest tests, whichever harness call
// they use, with the reason the host gives; one it accepts passes them.
func TestHarnessRefusesWhatTheHostRefuses(t *testing.T) {
	order := sdk.Order{ID: "1", TS: 1, Qty: 1, Event: "e", Who: "w"}
	tests := []struct {
		name    string
		effects []sdk.Effect
		limits  sdk.Limits
		// perOrder: a limit on one order's effects together, which
		// CheckKeys (effect by effect) does not see.
		perOrder bool
	}{
		{name: "good", effects: []sdk.Effect{
			{Command: "HINCRBY", Key: "m:h", Args: []string{"f", "5"}},
			{Command: "BITFIELD", Key: "m:b", Args: []string{"INCRBY", "u32", "#32767", "1"}},
		}},
		{name: "integer with a plus", effects: []sdk.Effect{{Command: "HINCRBY", Key: "m:h", Args: []string{"f", "+5"}}}},
		{name: "integer with a leading zero", effects: []sdk.Effect{{Command: "INCRBY", Key: "m:i", Args: []string{"05"}}}},
		{name: "float with an exponent", effects: []sdk.Effect{{Command: "ZINCRBY", Key: "m:z", Args: []string{"1e3", "x"}}}},
		{name: "bitfield beyond the limit", effects: []sdk.Effect{{Command: "BITFIELD", Key: "m:b", Args: []string{"INCRBY", "u32", "#32768", "1"}}}},
		{name: "bitfield beyond a lower limit", limits: sdk.Limits{MaxBitfieldBits: 64},
			effects: []sdk.Effect{{Command: "BITFIELD", Key: "m:b", Args: []string{"INCRBY", "u32", "#2", "1"}}}},
		{name: "bitfield get", effects: []sdk.Effect{{Command: "BITFIELD", Key: "m:b", Args: []string{"GET", "u8", "0"}}}},
		{name: "xadd with an id", effects: []sdk.Effect{{Command: "XADD", Key: "m:s", Args: []string{"1-1", "f", "v"}}}},
		{name: "command off the list", effects: []sdk.Effect{{Command: "DEL", Key: "m:h"}}},
		{name: "key outside the patterns", effects: []sdk.Effect{{Command: "SADD", Key: "other", Args: []string{"x"}}}},
		{name: "too many effects", limits: sdk.Limits{MaxEffects: 1}, perOrder: true, effects: []sdk.Effect{
			{Command: "SADD", Key: "m:s", Args: []string{"a"}}, {Command: "SADD", Key: "m:s", Args: []string{"b"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &emitter{effects: tt.effects}
			// What the host says, minus the "plugin emitter: " it adds.
			var want string
			pol := policy.New("emitter", p.Describe().Keys, nil)
			pol.Limits = tt.limits
			if err := pol.CheckAll(tt.effects); err != nil {
				want = strings.TrimPrefix(err.Error(), "plugin emitter: ")
			}
			for _, call := range []struct {
				name string
				use  func(h *Harness)
			}{
				{"Effects", func(h *Harness) { h.Effects(order) }},
				{"Process", func(h *Harness) { h.Process(order) }},
				{"CheckKeys", func(h *Harness) { h.CheckKeys(h.ProcessRaw(order)[0].Effects) }},
			} {
				if tt.perOrder && call.name == "CheckKeys" {
					continue
				}
				got := failures(t, p, func(h *Harness) { h.Limits = tt.limits; call.use(h) })
				switch {
				case want == "" && len(got) > 0:
					t.Errorf("%s: the host accepts the effects, but the harness failed the test: %q", call.name, got)
				case want != "" && len(got) == 0:
					t.Errorf("%s: the host refuses the effects (%s), but the harness passed the test", call.name, want)
				case want != "" && !strings.HasSuffix(got[0], ": "+want):
					t.Errorf("%s: the harness failed the test with %q, want the host's reason %q", call.name, got[0], want)
				}
			}
		})
	}
}

// typo is a plugin that declares "zone" and reads "zon".
type typo struct{ emitter }

func (p *typo) Describe() sdk.Description {
	d := p.emitter.Describe()
	d.Config = []sdk.Field{{Name: "zone", Type: sdk.TypeString, Default: "UTC"}}
	return d
}
func (p *typo) Configure(c sdk.Config) error {
	if c.String("zone") != "UTC" {
		return sdk.FieldErrorf("zone", "zone = %q, want the default", c.String("zone"))
	}
	_ = c.String("zon")
	return nil
}

// TestConfigureReportsAnUndeclaredField: a plugin reading a config field
// it does not declare gets a configuration error naming the field, not an
// empty setting, nor a crash.
func TestConfigureReportsAnUndeclaredField(t *testing.T) {
	errs := Start(t, &typo{}).Configure(nil)
	if len(errs) != 1 || errs[0].Field != "" || !strings.Contains(errs[0].Message, `config field "zon", which its Description.Config does not declare`) {
		t.Fatalf("Configure = %+v, want one error naming the undeclared field", errs)
	}
}
