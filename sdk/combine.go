package sdk

import (
	"errors"
	"fmt"
	"reflect"
)

// Combine returns one plugin, named name, that runs each of members on
// every order, in the order given, and answers with all their effects. It
// is a deployment choice for plugins that trust each other: served from
// one process, a batch costs one call instead of one per member, and on a
// small machine one process to wake instead of several (see
// docs/writing-plugins.md, "Several metrics in one process").
//
// What the members shared by being separate is now one: one process and
// sandbox, one config block (the union of their fields; a field two
// members declare must be declared alike), one set of keys, one done
// marker per order under name. An order one member fails is failed for
// all: none of its effects is applied, and it is retried or dead-lettered
// under name, with the member's name in the error. The host's per-order
// limits apply to the members' effects together.
func Combine(name, version string, members ...Plugin) (Plugin, error) {
	if name == "" {
		return nil, errors.New("combine: the combined plugin needs a name")
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("combine %s: no members", name)
	}
	c := &combined{name: name, version: version, members: members}
	seen := map[string]bool{}
	fields := map[string]Field{}
	for _, m := range members {
		d := m.Describe()
		if seen[d.Name] {
			return nil, fmt.Errorf("combine %s: two members are named %q", name, d.Name)
		}
		seen[d.Name] = true
		c.names = append(c.names, d.Name)
		own := make([]string, 0, len(d.Config))
		for _, f := range d.Config {
			if prev, ok := fields[f.Name]; ok && !reflect.DeepEqual(prev, f) {
				return nil, fmt.Errorf("combine %s: member %s declares config field %q unlike an earlier member", name, d.Name, f.Name)
			}
			if _, ok := fields[f.Name]; !ok {
				c.fields = append(c.fields, f)
			}
			fields[f.Name] = f
			own = append(own, f.Name)
		}
		c.own = append(c.own, own)
	}
	// The views as before Configure: a combination over the bounds would
	// otherwise only be refused when the host launches it.
	if err := ValidateViews(c.Describe()); err != nil {
		return nil, fmt.Errorf("combine %s: %w", name, err)
	}
	return c, nil
}

// combined is the Plugin Combine returns.
type combined struct {
	name, version string
	members       []Plugin
	// names are the members' names; own their config fields' names; fields
	// the union of their fields, each once, in the members' order.
	names  []string
	own    [][]string
	fields []Field
}

var _ interface {
	Plugin
	Logging
} = (*combined)(nil)

// Describe implements Plugin: the members' keys and views, in their order.
// Each member is asked again, since its views may depend on its settings.
func (c *combined) Describe() Description {
	d := Description{Name: c.name, Version: c.version, Config: c.fields}
	for _, m := range c.members {
		md := m.Describe()
		d.Keys = append(d.Keys, md.Keys...)
		d.Views = append(d.Views, md.Views...)
	}
	return d
}

// Configure implements Plugin: each member gets the fields it declares,
// and only those, so reading another member's field is still the typo
// the SDK reports. A member's field errors keep their field, for the
// host to point at its line (said once when members sharing the field say
// the same); its other errors are prefixed with its name.
func (c *combined) Configure(cfg Config) error {
	var errs []error
	said := map[FieldError]bool{}
	for i, m := range c.members {
		values := make(map[string]any, len(c.own[i]))
		for _, f := range c.own[i] {
			if v, ok := cfg.values[f]; ok {
				values[f] = v
			}
		}
		// Each member's own guard: a member reading a field it does not
		// declare is reported under its name, and the others still run.
		err := configure(m, Config{values: values, declared: cfg.declared})
		for _, fe := range FieldErrors(err) {
			if fe.Field == "" {
				fe.Message = c.names[i] + ": " + fe.Message
			}
			if !said[fe] {
				said[fe] = true
				errs = append(errs, &fe)
			}
		}
	}
	return errors.Join(errs...)
}

// Handle implements Plugin. Each member sees only its own effects in out
// (List, Reset), as when it runs alone. On a member's error (or panic) the
// effects appended so far stay in out: the SDK drops an order's effects
// when Handle fails.
func (c *combined) Handle(o Order, out *Effects) error {
	defer out.unshelve()
	for i, m := range c.members {
		out.shelve()
		if err := handleOne(m, o, out); err != nil {
			return fmt.Errorf("%s: %w", c.names[i], err)
		}
	}
	return nil
}

// SetLogger implements Logging: each member that logs gets a logger
// named after it.
func (c *combined) SetLogger(l Logger) {
	for i, m := range c.members {
		if lm, ok := m.(Logging); ok {
			lm.SetLogger(l.Named(c.names[i]))
		}
	}
}
