package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/eventhost/eventhost/sdk"
)

// Keys written. KeyOrders is inside the plugin's pattern; the others are what
// the misbehaving modes write.
const (
	KeyPattern   = "liar:*"
	KeyOrders    = "liar:orders"
	KeyForbidden = "liar:x"
	KeyOutside   = "sales_summary"
)

// Config field names.
const (
	FieldMode      = "mode"
	FieldMatch     = "match"
	FieldHang      = "hang"
	FieldCrashFile = "crash_file"
	FieldCountKey  = "count_key"
)

// The modes: what the plugin does with a matching order.
const (
	ModeOK        = "ok"        // record it, like every non-matching order
	ModeError     = "error"     // return an error for it (transient: the host retries)
	ModePermanent = "permanent" // return a permanent error for it (no retry)
	ModeFlaky     = "flaky"     // return an error the first time each order is seen, then record it
	ModeForbidden = "forbidden" // record it and also DEL a key: a command off the allowlist
	ModeOutside   = "outside"   // record it and also write a key outside its patterns
	ModeHang      = "hang"      // sleep for the hang duration before answering
	ModeCrash     = "crash"     // exit the process (once, when crash_file is set)
)

var modes = []string{ModeOK, ModeError, ModePermanent, ModeFlaky, ModeForbidden, ModeOutside, ModeHang, ModeCrash}

// liar is the plugin. The zero value is configured by Configure.
type liar struct {
	mode      string
	match     string
	hang      time.Duration
	crashFile string
	countKey  string
	// seen holds the orders flaky mode has failed once. The host calls
	// Handle from one batch at a time, so no lock.
	seen map[string]bool
}

var _ sdk.Plugin = (*liar)(nil)

// Describe implements sdk.Plugin.
func (*liar) Describe() sdk.Description {
	return sdk.Description{
		Name:    "liar",
		Version: "0.0.0-test",
		Keys:    []string{KeyPattern},
		Config: []sdk.Field{
			{Name: FieldMode, Type: sdk.TypeString, Default: ModeOK,
				Doc: "what to do with matching orders: " + strings.Join(modes, ", ")},
			{Name: FieldMatch, Type: sdk.TypeString, Default: "",
				Doc: "orders whose id contains this substring misbehave; empty means every order"},
			{Name: FieldHang, Type: sdk.TypeString, Default: "30s",
				Doc: "how long mode hang sleeps per matching order"},
			{Name: FieldCrashFile, Type: sdk.TypeString, Default: "",
				Doc: "mode crash exits only if this file does not exist yet, creating it first; empty crashes every time"},
			{Name: FieldCountKey, Type: sdk.TypeString, Default: "",
				Doc: "when set (a liar:* key), each recorded order also adds 1 to its field in this hash: a double apply shows as 2, where the set hides it"},
		},
	}
}

// Configure implements sdk.Plugin.
func (l *liar) Configure(cfg sdk.Config) error {
	var errs []error
	mode := cfg.String(FieldMode)
	known := false
	for _, m := range modes {
		known = known || m == mode
	}
	if !known {
		errs = append(errs, sdk.FieldErrorf(FieldMode, "mode %q is not one of %s", mode, strings.Join(modes, ", ")))
	}
	hang, err := time.ParseDuration(cfg.String(FieldHang))
	if err != nil || hang < 0 {
		errs = append(errs, sdk.FieldErrorf(FieldHang, "hang %q is not a duration such as \"5s\"", cfg.String(FieldHang)))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	l.mode, l.match, l.hang, l.crashFile = mode, cfg.String(FieldMatch), hang, cfg.String(FieldCrashFile)
	l.countKey = cfg.String(FieldCountKey)
	return nil
}

// Handle implements sdk.Plugin.
func (l *liar) Handle(o sdk.Order, out *sdk.Effects) error {
	if !strings.Contains(o.ID, l.match) {
		l.record(o, out)
		return nil
	}
	switch l.mode {
	case ModeError:
		return fmt.Errorf("liar refuses order %s", o.ID)
	case ModePermanent:
		return sdk.Permanent(fmt.Errorf("liar refuses order %s for good", o.ID))
	case ModeFlaky:
		if !l.seen[o.ID] {
			if l.seen == nil {
				l.seen = map[string]bool{}
			}
			l.seen[o.ID] = true
			return fmt.Errorf("liar stumbles on order %s", o.ID)
		}
	case ModeForbidden:
		// The allowed write comes first: the host must refuse the order's
		// effects as a whole, not apply the part before the bad one.
		out.SAdd(KeyOrders, o.ID)
		out.Add("DEL", KeyForbidden)
		return nil
	case ModeOutside:
		out.SAdd(KeyOrders, o.ID)
		out.SAdd(KeyOutside, o.ID)
		return nil
	case ModeHang:
		time.Sleep(l.hang)
	case ModeCrash:
		l.crash()
	}
	l.record(o, out)
	return nil
}

func (l *liar) record(o sdk.Order, out *sdk.Effects) {
	out.SAdd(KeyOrders, o.ID)
	if l.countKey != "" {
		out.HIncrBy(l.countKey, o.ID, 1)
	}
}

// crash exits the process, as a plugin with a fatal bug would, unless the
// crash file says it already crashed once.
func (l *liar) crash() {
	if l.crashFile == "" {
		os.Exit(2)
	}
	f, err := os.OpenFile(l.crashFile, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return // already crashed once (or the file cannot be made): behave
	}
	_ = f.Close()
	os.Exit(2)
}
