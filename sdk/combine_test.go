package sdk_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/sdktest"
)

// member is a plugin for Combine's tests: it declares fields, writes one
// INCRBY of its key per order (by its "step" setting when it declares it),
// and fails orders whose event names it.
type member struct {
	name   string
	fields []sdk.Field
	step   int64
	// configured is what Configure received, by field.
	configured map[string]any
	logger     sdk.Logger
}

func (m *member) Describe() sdk.Description {
	return sdk.Description{Name: m.name, Version: "1", Keys: []string{m.name + ":*"}, Config: m.fields,
		Views: []sdk.View{{Title: m.name, KeyCount: &sdk.KeyCountView{Pattern: m.name + ":*"}}}}
}

func (m *member) Configure(c sdk.Config) error {
	m.configured = map[string]any{}
	m.step = 1
	for _, f := range m.fields {
		switch f.Type {
		case sdk.TypeNumber:
			m.configured[f.Name] = c.Number(f.Name)
		default:
			m.configured[f.Name] = c.String(f.Name)
		}
		if f.Name == "step" {
			m.step = int64(c.Number("step"))
			if m.step <= 0 {
				return sdk.FieldErrorf("step", "must be positive")
			}
		}
		if f.Name == "mode" && c.String("mode") == "broken" {
			return errors.New("cannot run broken")
		}
	}
	return nil
}

func (m *member) Handle(o sdk.Order, out *sdk.Effects) error {
	switch o.Event {
	case m.name:
		return errors.New("no " + m.name + " today")
	case m.name + "-permanent":
		return sdk.Permanent(errors.New("never " + m.name))
	}
	out.IncrBy(m.name+":"+o.Who, m.step*o.Qty)
	return nil
}

func (m *member) SetLogger(l sdk.Logger) { m.logger = l }

func mustCombine(t *testing.T, members ...sdk.Plugin) sdk.Plugin {
	t.Helper()
	p, err := sdk.Combine("both", "2.0", members...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	stepField = sdk.Field{Name: "step", Type: sdk.TypeNumber, Default: float64(1)}
	modeField = sdk.Field{Name: "mode", Type: sdk.TypeString, Default: "fast"}
)

func TestCombineDescribesTheUnion(t *testing.T) {
	a := &member{name: "a", fields: []sdk.Field{stepField}}
	b := &member{name: "b", fields: []sdk.Field{modeField, stepField}}
	h := sdktest.Start(t, mustCombine(t, a, b))
	d := h.Description()
	if d.Name != "both" || d.Version != "2.0" {
		t.Errorf("name %q version %q, want both 2.0", d.Name, d.Version)
	}
	if want := []string{"a:*", "b:*"}; !reflect.DeepEqual(d.Keys, want) {
		t.Errorf("keys %q, want %q", d.Keys, want)
	}
	var names []string
	for _, f := range d.Config {
		names = append(names, f.Name)
	}
	if want := []string{"step", "mode"}; !reflect.DeepEqual(names, want) {
		t.Errorf("config fields %q, want %q (a field two members share, once)", names, want)
	}
	h.MustConfigure(map[string]any{"step": float64(3)})
	var titles []string
	for _, v := range h.Description().Views {
		titles = append(titles, v.Title)
	}
	if want := []string{"a", "b"}; !reflect.DeepEqual(titles, want) {
		t.Errorf("views %q, want %q", titles, want)
	}
}

func TestCombineRefusesConflicts(t *testing.T) {
	other := sdk.Field{Name: "step", Type: sdk.TypeString}
	for name, members := range map[string][]sdk.Plugin{
		"a field declared two ways": {&member{name: "a", fields: []sdk.Field{stepField}}, &member{name: "b", fields: []sdk.Field{other}}},
		"two members of one name":   {&member{name: "a"}, &member{name: "a"}},
		"no member":                 nil,
	} {
		if _, err := sdk.Combine("both", "1", members...); err == nil {
			t.Errorf("%s: combined", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := sdk.Combine("", "1", &member{name: "a"}); err == nil {
		t.Error("combined without a name")
	}
}

func TestCombineConfiguresEachMemberWithItsFields(t *testing.T) {
	a := &member{name: "a", fields: []sdk.Field{stepField}}
	b := &member{name: "b", fields: []sdk.Field{stepField, modeField}}
	c := &member{name: "c"}
	h := sdktest.Start(t, mustCombine(t, a, b, c))
	h.MustConfigure(map[string]any{"step": float64(3), "mode": "slow"})
	if want := map[string]any{"step": float64(3)}; !reflect.DeepEqual(a.configured, want) {
		t.Errorf("a got %v, want %v", a.configured, want)
	}
	if want := map[string]any{"step": float64(3), "mode": "slow"}; !reflect.DeepEqual(b.configured, want) {
		t.Errorf("b got %v, want %v", b.configured, want)
	}
	if len(c.configured) != 0 {
		t.Errorf("c got %v, want nothing", c.configured)
	}

	// A member's field error keeps its field, and is said once however
	// many members share the field; its other errors name it.
	errs := h.Configure(map[string]any{"step": float64(-1)})
	want := []sdk.FieldError{{Field: "step", Message: "must be positive"}}
	if !reflect.DeepEqual(errs, want) {
		t.Errorf("field errors %v, want %v", errs, want)
	}
	errs = h.Configure(map[string]any{"mode": "broken"})
	if want := []sdk.FieldError{{Message: "b: cannot run broken"}}; !reflect.DeepEqual(errs, want) {
		t.Errorf("errors %v, want %v", errs, want)
	}
}

// typoMember reads a field it does not declare.
type typoMember struct{ member }

func (p *typoMember) Configure(c sdk.Config) error { _ = c.String("step"); return nil }

// A member reading another member's field is the typo the SDK reports for
// a plugin alone: combined, it would otherwise read the other's setting.
func TestCombineKeepsEachMembersFieldsItsOwn(t *testing.T) {
	a := &member{name: "a", fields: []sdk.Field{stepField}}
	b := &typoMember{member{name: "b"}}
	h := sdktest.Start(t, mustCombine(t, a, b))
	errs := h.Configure(map[string]any{"step": float64(2)})
	if len(errs) != 1 || !strings.Contains(errs[0].Message, `"step"`) {
		t.Errorf("errors %v, want one naming the undeclared field step", errs)
	}
}

func TestCombineHandlesWithEveryMember(t *testing.T) {
	a := &member{name: "a", fields: []sdk.Field{stepField}}
	b := &member{name: "b"}
	h := sdktest.Start(t, mustCombine(t, a, b))
	h.MustConfigure(map[string]any{"step": float64(10)})
	orders := []sdk.Order{
		{ID: "1", Qty: 2, Who: "ann", Event: "Judo"},
		{ID: "2", Qty: 1, Who: "bob", Event: "b"},
		{ID: "3", Qty: 1, Who: "cy", Event: "a-permanent"},
		{ID: "4", Qty: 5, Who: "di", Event: "b-permanent"},
	}
	results := h.Process(orders...)
	if len(results) != len(orders) {
		t.Fatalf("%d results for %d orders", len(results), len(orders))
	}
	wantEffects := []sdk.Effect{
		{Command: "INCRBY", Key: "a:ann", Args: []string{"20"}},
		{Command: "INCRBY", Key: "b:ann", Args: []string{"2"}},
	}
	if r := results[0]; r.Err != "" || !reflect.DeepEqual(r.Effects, wantEffects) {
		t.Errorf("order 1: err %q effects %v, want %v", r.Err, r.Effects, wantEffects)
	}
	// A member's failure fails the order for all: a's effect is dropped,
	// and the error says which member and whether to retry.
	for i, want := range []struct {
		err       string
		permanent bool
	}{
		{"b: no b today", false},
		{"a: never a", true},
		{"b: never b", true},
	} {
		r := results[i+1]
		if r.Err != want.err || r.Permanent != want.permanent || len(r.Effects) != 0 {
			t.Errorf("order %s: err %q permanent %v effects %v, want err %q permanent %v and no effects",
				orders[i+1].ID, r.Err, r.Permanent, r.Effects, want.err, want.permanent)
		}
	}
}

func TestCombineGivesEachMemberItsLogger(t *testing.T) {
	a, b := &member{name: "a"}, &member{name: "b"}
	p := mustCombine(t, a, b, &nonLogging{})
	p.(sdk.Logging).SetLogger(hclog.New(&hclog.LoggerOptions{Name: "both"}))
	if a.logger == nil || a.logger.Name() != "both.a" || b.logger == nil || b.logger.Name() != "both.b" {
		t.Errorf("loggers %v, %v; want both.a, both.b", a.logger, b.logger)
	}
}

// nonLogging is a member that does not log.
type nonLogging struct{}

func (nonLogging) Describe() sdk.Description            { return sdk.Description{Name: "quiet"} }
func (nonLogging) Configure(sdk.Config) error           { return nil }
func (nonLogging) Handle(sdk.Order, *sdk.Effects) error { return nil }

// viewer declares n views of its keys.
type viewer struct {
	member
	n int
}

func (v *viewer) Describe() sdk.Description {
	d := v.member.Describe()
	d.Views = nil
	for i := range v.n {
		d.Views = append(d.Views, sdk.View{Title: fmt.Sprint(v.name, i), KeyCount: &sdk.KeyCountView{Pattern: v.name + ":*"}})
	}
	return d
}

// Members within the view bound alone but not together are refused when
// combined, not when the host launches the plugin.
func TestCombineRefusesTooManyViews(t *testing.T) {
	half := sdk.MaxViews/2 + 1
	_, err := sdk.Combine("both", "1", &viewer{member{name: "a"}, half}, &viewer{member{name: "b"}, half})
	if err == nil || !strings.Contains(err.Error(), "views") {
		t.Errorf("combined %d views: err %v, want one about views", 2*half, err)
	}
	if _, err := sdk.Combine("both", "1", &viewer{member{name: "a"}, half}, &viewer{member{name: "b"}, 1}); err != nil {
		t.Errorf("combined %d views: %v", half+1, err)
	}
}

// resetter takes back what was added for the order before it.
type resetter struct{ member }

func (r *resetter) Handle(o sdk.Order, out *sdk.Effects) error {
	out.Reset()
	out.IncrBy(r.name+":"+o.Who, 1)
	out.IncrBy(r.name+":"+o.Who, 1)
	return nil
}

// panicker panics on every order.
type panicker struct{ member }

func (p *panicker) Handle(sdk.Order, *sdk.Effects) error { panic("boom") }

// A member sees only its own effects: its Reset takes back its own alone,
// as when it runs alone.
func TestCombineMembersResetTheirOwnEffects(t *testing.T) {
	h := sdktest.Start(t, mustCombine(t, &member{name: "a"}, &resetter{member{name: "r"}}, &member{name: "b"}))
	h.MustConfigure(nil)
	got := h.Effects(sdk.Order{ID: "7", Qty: 3, Who: "ann", Event: "Judo"})
	want := []sdk.Effect{
		{Command: "INCRBY", Key: "a:ann", Args: []string{"3"}},
		{Command: "INCRBY", Key: "r:ann", Args: []string{"1"}},
		{Command: "INCRBY", Key: "r:ann", Args: []string{"1"}},
		{Command: "INCRBY", Key: "b:ann", Args: []string{"3"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("effects %v, want %v", got, want)
	}
}

// A member's panic fails the order, named, for good.
func TestCombineNamesAPanickingMember(t *testing.T) {
	h := sdktest.Start(t, mustCombine(t, &member{name: "a"}, &panicker{member{name: "p"}}))
	h.MustConfigure(nil)
	r := h.Process(sdk.Order{ID: "7", Qty: 1, Who: "ann", Event: "Judo"})[0]
	if want := "p: panic handling order 7: boom"; !strings.HasPrefix(r.Err, want) || !r.Permanent || len(r.Effects) != 0 {
		t.Errorf("err %q permanent %v effects %v, want a permanent error starting %q and no effects", r.Err, r.Permanent, r.Effects, want)
	}
}

// A member reading a field it does not declare is named, and the members
// after it are configured all the same.
func TestCombineNamesAMemberReadingAnUndeclaredField(t *testing.T) {
	typo := &typoMember{member{name: "t"}}
	b := &member{name: "b", fields: []sdk.Field{stepField}}
	h := sdktest.Start(t, mustCombine(t, typo, b))
	errs := h.Configure(map[string]any{"step": float64(-1)})
	if len(errs) != 2 || !strings.HasPrefix(errs[0].Message, "t: ") || !strings.Contains(errs[0].Message, `"step"`) ||
		errs[1] != (sdk.FieldError{Field: "step", Message: "must be positive"}) {
		t.Errorf("errors %q, want t's undeclared step, then b's step error", errs)
	}
}
