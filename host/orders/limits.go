package orders

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits bound what an order may hold before any plugin sees it. Anyone who
// can PUBLISH or HSET controls an order, so every bound here is a line a
// hostile or broken producer cannot cross: an order outside them is
// dead-lettered with a reason that names the limit (limits.<name> = value,
// as written in the config's limits block). The zero Limits refuses every
// order: start from DefaultLimits (config.Config.Limits always does).
type Limits struct {
	// MaxIDBytes bounds an order id. It is checked before the hash is read,
	// so a huge id is never loaded or stored in full.
	MaxIDBytes int
	// MaxOrderBytes bounds the sum of the lengths of an order hash's field
	// names and values, eventhost's own marker fields excepted (they grow
	// as plugins finish, and an order must not turn bad by being counted).
	MaxOrderBytes int
	// MaxFieldBytes bounds each field name and each value, markers included.
	MaxFieldBytes int
	// MaxQty is the largest qty; the smallest is 1.
	MaxQty int64
	// MaxCost is the largest cost; the smallest is 0.
	MaxCost float64
	// CostDecimals is how many digits a cost may have after its point.
	CostDecimals int
	// MinTS and MaxTS bound ts (unix seconds), both inclusive.
	MinTS, MaxTS int64
}

// Default limits. An order of the tutorial's shape is about 100 bytes; 64 KiB
// leaves room for generous extra fields while a full batch of 512 such
// orders stays at 32 MiB, far under the 256 MiB a plugin call may carry. A
// field over 4 KiB is not a name, a seat or a note but a payload. Costs keep
// up to 4 decimals: every ISO 4217 currency has at most 4 minor digits, and
// host/publish writes 2. One order over a billion, or over a million
// tickets, is a bug or an attack, and either would swamp the real totals it
// is added to. ts spans 2000-01-01 to 2100-01-01 UTC: fixed bounds, so a
// wrong clock on the host cannot turn good orders bad.
const (
	DefaultMaxIDBytes    = 256
	DefaultMaxOrderBytes = 64 << 10
	DefaultMaxFieldBytes = 4 << 10
	DefaultMaxQty        = 1_000_000
	DefaultMaxCost       = 1e9
	DefaultCostDecimals  = 4
	DefaultMinTS         = 946684800  // 2000-01-01T00:00:00Z
	DefaultMaxTS         = 4102444800 // 2100-01-01T00:00:00Z
)

// DefaultLimits returns the limits used when the config sets none.
func DefaultLimits() Limits {
	return Limits{
		MaxIDBytes:    DefaultMaxIDBytes,
		MaxOrderBytes: DefaultMaxOrderBytes,
		MaxFieldBytes: DefaultMaxFieldBytes,
		MaxQty:        DefaultMaxQty,
		MaxCost:       DefaultMaxCost,
		CostDecimals:  DefaultCostDecimals,
		MinTS:         DefaultMinTS,
		MaxTS:         DefaultMaxTS,
	}
}

// CheckID refuses an id that must not be looked up: empty, over MaxIDBytes,
// not valid UTF-8 (it reaches plugins as a protobuf string), or holding a
// control character (it ends up in keys, logs and terminals). The error
// never quotes more than MaxIDBytes of the id.
func (l Limits) CheckID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("empty order id")
	case len(id) > l.MaxIDBytes:
		return fmt.Errorf("order id of %d bytes exceeds limits.max_id_bytes = %d", len(id), l.MaxIDBytes)
	case !utf8.ValidString(id):
		return fmt.Errorf("order id %q is not valid UTF-8", id)
	}
	if i, r, ok := control(id, false); ok {
		return fmt.Errorf("order id %q holds control character %U at byte %d", id, r, i)
	}
	return nil
}

// checkField checks one field name and value of an order hash: lengths
// against MaxFieldBytes, and text that can be passed on honestly. Every
// field must be valid UTF-8 (plugins get protobuf strings) and hold no NUL.
// event, who and extra field names also refuse every other control
// character: they name keys and appear in reports, one line each. Extra
// values are free text and may hold tabs and line breaks.
func (l Limits) checkField(key, name, value string) error {
	if len(name) > l.MaxFieldBytes {
		return fmt.Errorf("order hash %s: a field name of %d bytes (%s) exceeds limits.max_field_bytes = %d",
			key, len(name), clip(name), l.MaxFieldBytes)
	}
	if len(value) > l.MaxFieldBytes {
		return fmt.Errorf("order hash %s: field %s holds %d bytes, over limits.max_field_bytes = %d",
			key, clip(name), len(value), l.MaxFieldBytes)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("order hash %s: field name %s is not valid UTF-8", key, clip(name))
	}
	if i, r, ok := control(name, false); ok {
		return fmt.Errorf("order hash %s: field name %s holds control character %U at byte %d", key, clip(name), r, i)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("order hash %s: field %s is not valid UTF-8", key, clip(name))
	}
	freeText := true
	switch name {
	case "event", "who":
		freeText = false
	}
	if i, r, ok := control(value, freeText); ok {
		return fmt.Errorf("order hash %s: field %s holds control character %U at byte %d", key, clip(name), r, i)
	}
	return nil
}

// control finds the first control character of s that is not allowed: NUL,
// C0 controls, DEL and C1 controls; with freeText, tab, line feed and
// carriage return are allowed. s must be valid UTF-8.
func control(s string, freeText bool) (int, rune, bool) {
	for i, r := range s {
		if r >= 0x20 && r < 0x7f || r > 0x9f {
			continue
		}
		if freeText && (r == '\t' || r == '\n' || r == '\r') {
			continue
		}
		return i, r, true
	}
	return 0, 0, false
}

// clip quotes s for an error message, cut to 64 bytes: the dead letter must
// say what was wrong without carrying the payload that was.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:n]) + "..."
}

// count parses an integer field, value (nil when the hash has no such
// field): digits only (no sign, no spaces, no exponent), in [lo, hi].
func count(value *string, name string, lo, hi int64, limit string) (int64, error) {
	if value == nil {
		return 0, fmt.Errorf("field %s is missing", name)
	}
	s := *value
	if !digits(s) {
		return 0, fmt.Errorf("field %s = %s is not %s", name, clip(s), wantInt[name])
	}
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case err != nil || n > hi:
		return 0, fmt.Errorf("field %s = %s exceeds limits.max_%s = %d", name, clip(s), limit, hi)
	case n < lo && name == "ts":
		return 0, fmt.Errorf("field %s = %s is before limits.min_ts = %d", name, clip(s), lo)
	case n < lo:
		return 0, fmt.Errorf("field %s = %s is not %s", name, clip(s), wantInt[name])
	}
	return n, nil
}

var wantInt = map[string]string{"ts": "a unix time in seconds", "qty": "a positive integer"}

// digits reports whether s is one or more ASCII digits.
func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// cost parses the cost field's value (nil when missing): a plain decimal
// with at most CostDecimals fraction digits ("12", "12.5", "0.25"), in
// [0, MaxCost]. Signs, exponents, hex, inf and nan are refused:
// strconv.ParseFloat takes them all, and an exponent is how one order adds
// 1e308 to a total.
func (l Limits) cost(value *string) (float64, error) {
	if value == nil {
		return 0, fmt.Errorf("field cost is missing")
	}
	s := *value
	whole, frac, point := strings.Cut(s, ".")
	if !digits(whole) || point && !digits(frac) {
		return 0, fmt.Errorf("field cost = %s is not a non-negative number written as digits with an optional point (no sign, exponent, hex, inf or nan)", clip(s))
	}
	if len(frac) > l.CostDecimals {
		return 0, fmt.Errorf("field cost = %s has %d fraction digits, over limits.cost_decimals = %d", clip(s), len(frac), l.CostDecimals)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f > l.MaxCost {
		return 0, fmt.Errorf("field cost = %s exceeds limits.max_cost = %s", clip(s), strconv.FormatFloat(l.MaxCost, 'f', -1, 64))
	}
	return f, nil
}
