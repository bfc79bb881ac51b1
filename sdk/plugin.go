// Package sdk is everything a plugin author imports to write an eventhost
// plugin: the order a plugin receives, the Redis write effects it returns, the
// description of its configuration, and Serve, which is the whole of a plugin's
// main function. go-plugin and gRPC stay behind this package.
package sdk

// Plugin is a metric: a pure function from one purchase order to the Redis
// writes that record it. The host applies the writes; a plugin never talks to
// Redis itself.
type Plugin interface {
	// Describe names the plugin, the keys it may write, its settings and
	// the views of its data. It is called at launch before Configure, and
	// again after it for the views, which may depend on the settings.
	Describe() Description

	// Configure receives the values of the plugin's `config {}` block,
	// already type-checked and with defaults filled in. An error rejects the
	// configuration; wrap it with FieldError so the host can point at the
	// offending line. Configure is called once per launch, before any order.
	Configure(cfg Config) error

	// Handle appends to out the writes that record order o. An error means
	// this order cannot be handled by this plugin; the host sends it to the
	// dead-letter stream with the error's text. Handle must not keep o or out.
	Handle(o Order, out *Effects) error
}

// Logging is implemented by plugins that want to log. Serve calls SetLogger
// before Configure; lines appear in the host's log under the plugin's name.
type Logging interface {
	SetLogger(Logger)
}

// Description is what a plugin says about itself.
type Description struct {
	// Name is the plugin's name, as used in the config's plugin block.
	Name    string
	Version string
	// Keys are glob patterns of the keys the plugin writes; '*' matches any
	// run of characters. The host rejects an effect on any other key.
	Keys []string
	// Config is the schema of the plugin's `config {}` block.
	Config []Field
	// Views say how `eventhost report` and the dashboard show the keys
	// the plugin writes (see View). Optional: a plugin without views is
	// processed all the same, its data just isn't shown.
	Views []View
}

// FieldType is the type of a configuration field.
type FieldType int

// The types a configuration field can have.
const (
	TypeString FieldType = iota + 1
	TypeNumber
	TypeBool
	TypeStringList
)

// String returns the name the HCL type checker would use.
func (t FieldType) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeNumber:
		return "number"
	case TypeBool:
		return "bool"
	case TypeStringList:
		return "list(string)"
	}
	return "unknown"
}

// Field describes one attribute of a plugin's `config {}` block.
type Field struct {
	Name string
	Type FieldType
	// Required fields have no default; leaving one out is a config error.
	Required bool
	// Default is used when the attribute is absent: a string, float64, bool
	// or []string matching Type. Nil means the zero value.
	Default any
	Doc     string
}
