package sdk

import (
	"errors"
	"fmt"
)

// Config holds the values of a plugin's `config {}` block, keyed by field
// name. Every field the plugin declared is present, with its default when the
// block left it out.
type Config struct {
	values map[string]any
	// declared: values holds every field the plugin declares, as the
	// host's Configure builds it, so a name it lacks is a typo in the
	// plugin: the accessors panic with UndeclaredField, which Serve turns
	// into a configuration error naming it.
	declared bool
}

// NewConfig returns a Config holding values; the host and sdktest build one
// through the plugin's schema, so plugins rarely need this. Its accessors
// return the zero value for a name values lacks.
func NewConfig(values map[string]any) Config { return Config{values: values} }

// declaredConfig is the Config of a plugin's Configure: values holds every
// field the plugin declares (WithDefaults).
func declaredConfig(values map[string]any) Config { return Config{values: values, declared: true} }

// UndeclaredField is what a Config's accessor panics with when asked for a
// field the plugin does not declare in Description.Config: a typo that
// would otherwise read as an empty setting.
type UndeclaredField struct{ Name string }

func (u UndeclaredField) Error() string {
	return fmt.Sprintf("the plugin reads config field %q, which its Description.Config does not declare", u.Name)
}

func (c Config) get(name string) any {
	v, ok := c.values[name]
	if !ok && c.declared {
		panic(UndeclaredField{Name: name})
	}
	return v
}

// String returns the string field name, or "" when it is not a string.
func (c Config) String(name string) string {
	s, _ := c.get(name).(string)
	return s
}

// Number returns the number field name, or 0 when it is not a number.
func (c Config) Number(name string) float64 {
	f, _ := c.get(name).(float64)
	return f
}

// Bool returns the bool field name, or false when it is not a bool.
func (c Config) Bool(name string) bool {
	b, _ := c.get(name).(bool)
	return b
}

// StringList returns the list field name, or nil when it is not a list.
func (c Config) StringList(name string) []string {
	switch v := c.get(name).(type) {
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// FieldError is a configuration error about one field. The host reports it
// at the line of that field in the config file.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Message) }

// FieldErrorf returns a FieldError for field with a formatted message.
func FieldErrorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// FieldErrors flattens err (which may be joined with errors.Join) into field
// errors; parts that are not FieldErrors get an empty Field.
func FieldErrors(err error) []FieldError {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []FieldError
		for _, e := range joined.Unwrap() {
			out = append(out, FieldErrors(e)...)
		}
		return out
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return []FieldError{*fe}
	}
	return []FieldError{{Message: err.Error()}}
}

// WithDefaults returns values completed with the defaults of fields, and an
// error for each required field that is missing.
func WithDefaults(fields []Field, values map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(fields))
	for k, v := range values {
		out[k] = v
	}
	var errs []error
	for _, f := range fields {
		if v, ok := out[f.Name]; ok && v != nil {
			continue
		}
		if f.Required {
			errs = append(errs, FieldErrorf(f.Name, "the %q setting is required", f.Name))
			continue
		}
		out[f.Name] = f.Default
	}
	return out, errors.Join(errs...)
}
