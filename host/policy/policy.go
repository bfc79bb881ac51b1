// Package policy decides whether a plugin may make a write: the command must
// be on eventhost's allowlist with well-formed arguments, and the key must
// match a pattern the plugin declared (narrowed by the config) and lie
// outside the keys eventhost keeps for itself.
package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/eventhost/eventhost/sdk"
)

// KeyType is the Redis type a command needs its key to have.
var keyTypes = map[string]string{
	"HINCRBY": "hash", "HINCRBYFLOAT": "hash", "HSET": "hash",
	"SADD": "set", "ZINCRBY": "zset", "PFADD": "string", "BITFIELD": "string",
	"INCRBY": "string", "XADD": "stream",
}

// KeyType returns the Redis type (as TYPE names it) that command writes.
func KeyType(command string) string { return keyTypes[command] }

// Policy is one plugin's write permission.
type Policy struct {
	plugin   string
	patterns []string
	reserved []string
	// allow is the block's allow_keys; nil allows every declared pattern.
	allow  []string
	limits Limits
}

// Limits bound what one plugin may write for one order, so that one order
// cannot make Redis allocate, or one apply carry, more than an operator
// allowed. The zero value of a field means its default.
type Limits struct {
	// MaxBitfieldBits is the highest bit (offset plus width) a BITFIELD
	// may address: Redis grows the string to reach it (default 1 Mibit,
	// a 128 KiB string).
	MaxBitfieldBits int64
	// MaxEffects bounds the effects of one (plugin, order) pair
	// (default 1,000).
	MaxEffects int
	// MaxBytes bounds the bytes of one pair's effects: keys and
	// arguments (default 1 MiB).
	MaxBytes int
}

// The default Limits.
const (
	DefaultMaxBitfieldBits = 1 << 20
	DefaultMaxEffects      = 1000
	DefaultMaxBytes        = 1 << 20
)

func (l Limits) withDefaults() Limits {
	if l.MaxBitfieldBits <= 0 {
		l.MaxBitfieldBits = DefaultMaxBitfieldBits
	}
	if l.MaxEffects <= 0 {
		l.MaxEffects = DefaultMaxEffects
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	return l
}

// WithLimits sets the limits (see Limits; zero fields keep the defaults).
func WithLimits(l Limits) Option {
	return func(p *Policy) { p.limits = l.withDefaults() }
}

// Option narrows a Policy.
type Option func(*Policy)

// AllowKeys narrows the declared patterns to keys that also match one of
// allow (the plugin block's allow_keys). A nil allow narrows nothing; an
// empty, non-nil one refuses every key (config rejects that before it gets
// here).
func AllowKeys(allow []string) Option {
	return func(p *Policy) { p.allow = allow }
}

// New returns the policy for plugin, which declared patterns. Keys starting
// with any of reserved (order hashes, eventhost's own keys) are refused even
// when a pattern matches them.
func New(plugin string, patterns, reserved []string, opts ...Option) *Policy {
	p := &Policy{plugin: plugin, patterns: patterns, reserved: reserved, limits: Limits{}.withDefaults()}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Check returns why e is not allowed, or nil.
func (p *Policy) Check(e sdk.Effect) error {
	if _, ok := keyTypes[e.Command]; !ok {
		return fmt.Errorf("plugin %s: command %q is not allowed (allowed: HINCRBY HINCRBYFLOAT HSET SADD ZINCRBY PFADD BITFIELD INCRBY XADD)", p.plugin, e.Command)
	}
	if e.Key == "" {
		return fmt.Errorf("plugin %s: %s with an empty key", p.plugin, e.Command)
	}
	for _, r := range p.reserved {
		if strings.HasPrefix(e.Key, r) {
			return fmt.Errorf("plugin %s: %s %s: keys starting with %q are reserved for eventhost", p.plugin, e.Command, e.Key, r)
		}
	}
	if !sdk.MatchesAny(p.patterns, e.Key) {
		return fmt.Errorf("plugin %s: %s %s: key is outside the plugin's patterns %q", p.plugin, e.Command, e.Key, p.patterns)
	}
	if p.allow != nil && !sdk.MatchesAny(p.allow, e.Key) {
		return fmt.Errorf("plugin %s: %s %s: key is outside the block's allow_keys %q (the plugin declares %q)", p.plugin, e.Command, e.Key, p.allow, p.patterns)
	}
	if err := checkArgs(e.Command, e.Args, p.limits); err != nil {
		return fmt.Errorf("plugin %s: %s %s: %w", p.plugin, e.Command, e.Key, err)
	}
	return nil
}

// CheckAll checks one order's effects, each and together (Limits),
// returning the first violation.
func (p *Policy) CheckAll(effects []sdk.Effect) error {
	if len(effects) > p.limits.MaxEffects {
		return fmt.Errorf("plugin %s: %d effects for one order; the limit is %d (limits.max_effects_per_order)", p.plugin, len(effects), p.limits.MaxEffects)
	}
	size := 0
	for _, e := range effects {
		if err := p.Check(e); err != nil {
			return err
		}
		size += len(e.Command) + len(e.Key)
		for _, a := range e.Args {
			size += len(a)
		}
	}
	if size > p.limits.MaxBytes {
		return fmt.Errorf("plugin %s: effects of %d bytes for one order; the limit is %d (limits.max_effect_bytes_per_order)", p.plugin, size, p.limits.MaxBytes)
	}
	return nil
}

// MaxArgs bounds one effect's arguments. The apply script hands them to Redis
// with Lua's unpack, which fails past about 8,000 values, and fails outside
// pcall: half a batch would be written. An effect that needs more is split
// into several by the plugin. The SDK's decoder holds to the same bound.
const MaxArgs = sdk.MaxEffectArgs

func checkArgs(cmd string, args []string, l Limits) error {
	if len(args) > MaxArgs {
		return fmt.Errorf("has %d arguments; at most %d per effect (split it into several effects)", len(args), MaxArgs)
	}
	switch cmd {
	case "HINCRBY":
		if len(args) != 2 {
			return fmt.Errorf("wants field and increment, got %d arguments", len(args))
		}
		return isInt(args[1])
	case "HINCRBYFLOAT":
		if len(args) != 2 {
			return fmt.Errorf("wants field and increment, got %d arguments", len(args))
		}
		return isFloat(args[1])
	case "HSET":
		if len(args) < 2 || len(args)%2 != 0 {
			return fmt.Errorf("wants field/value pairs, got %d arguments", len(args))
		}
	case "SADD", "PFADD":
		if len(args) < 1 {
			return fmt.Errorf("wants at least one member")
		}
	case "ZINCRBY":
		if len(args) != 2 {
			return fmt.Errorf("wants increment and member, got %d arguments", len(args))
		}
		return isFloat(args[0])
	case "INCRBY":
		if len(args) != 1 {
			return fmt.Errorf("wants one increment, got %d arguments", len(args))
		}
		return isInt(args[0])
	case "BITFIELD":
		return checkBitfield(args, l.MaxBitfieldBits)
	case "XADD":
		return checkXAdd(args)
	}
	return nil
}

// checkBitfield allows only writing subcommands; GET would turn a write
// batch into a read.
func checkBitfield(args []string, maxBits int64) error {
	if len(args) == 0 {
		return fmt.Errorf("wants at least one subcommand")
	}
	for i := 0; i < len(args); {
		switch strings.ToUpper(args[i]) {
		case "OVERFLOW":
			if i+1 >= len(args) {
				return fmt.Errorf("OVERFLOW wants WRAP, SAT or FAIL")
			}
			switch strings.ToUpper(args[i+1]) {
			case "WRAP", "SAT", "FAIL":
			default:
				return fmt.Errorf("OVERFLOW %q is not WRAP, SAT or FAIL", args[i+1])
			}
			i += 2
		case "INCRBY", "SET":
			if i+3 >= len(args) {
				return fmt.Errorf("%s wants type, offset and value", args[i])
			}
			bits, err := checkBitfieldType(args[i+1])
			if err != nil {
				return err
			}
			off, hash := strings.CutPrefix(args[i+2], "#")
			n, err := strconv.ParseInt(off, 10, 64)
			if err != nil || n < 0 || isInt(off) != nil {
				return fmt.Errorf("offset %q is not a non-negative integer", args[i+2])
			}
			if hash {
				if n > maxBits/bits {
					return fmt.Errorf("offset %s addresses bits beyond %d (limits.max_bitfield_bits)", args[i+2], maxBits)
				}
				n *= bits
			}
			if n > maxBits-bits {
				return fmt.Errorf("offset %s with type %s addresses bits beyond %d (limits.max_bitfield_bits)", args[i+2], args[i+1], maxBits)
			}
			if err := isInt(args[i+3]); err != nil {
				return err
			}
			i += 4
		default:
			return fmt.Errorf("subcommand %q is not allowed (allowed: OVERFLOW, INCRBY, SET)", args[i])
		}
	}
	return nil
}

func checkBitfieldType(t string) (int64, error) {
	bits, err := sdk.ParseCounter(t)
	if err != nil {
		return 0, err
	}
	return bits, nil
}

// checkXAdd allows [MAXLEN [~] N] * field value [field value ...]: ids are
// always generated by Redis.
func checkXAdd(args []string) error {
	i := 0
	if i < len(args) && strings.EqualFold(args[i], "MAXLEN") {
		i++
		if i < len(args) && args[i] == "~" {
			i++
		}
		if i >= len(args) {
			return fmt.Errorf("MAXLEN wants a count")
		}
		if n, err := strconv.ParseInt(args[i], 10, 64); err != nil || n < 0 {
			return fmt.Errorf("MAXLEN %q is not a count", args[i])
		}
		i++
	}
	if i >= len(args) || args[i] != "*" {
		return fmt.Errorf("entry id must be *")
	}
	rest := len(args) - i - 1
	if rest < 2 || rest%2 != 0 {
		return fmt.Errorf("wants field/value pairs, got %d arguments", rest)
	}
	return nil
}

// isInt accepts what Redis' own integer parser does: an optional '-', no
// '+', no leading zeros, no "-0", within int64. Go's ParseInt alone accepts
// "+5" and "007", which Redis refuses half way through a batch.
func isInt(s string) error {
	ok := s == "0" || (len(s) > 0 && len(s) <= 20)
	if ok && s != "0" {
		digits := strings.TrimPrefix(s, "-")
		ok = len(digits) > 0 && digits[0] >= '1' && digits[0] <= '9'
		for i := 1; ok && i < len(digits); i++ {
			ok = digits[i] >= '0' && digits[i] <= '9'
		}
	}
	if _, err := strconv.ParseInt(s, 10, 64); !ok || err != nil {
		return fmt.Errorf("%q is not a 64-bit integer as Redis writes one", s)
	}
	return nil
}

// maxFloatLen bounds a float argument; sdk.FormatFloat needs at most about
// 330 characters for a float64 without exponent, and increments are summed
// exactly in decimal before they reach Redis.
const maxFloatLen = 400

// isFloat accepts plain decimals: an optional '-', digits with at most one
// '.', finite. No exponent, hex, "inf" or "nan" (Redis would take some of
// them, but the host sums increments exactly and bounds their cost).
func isFloat(s string) error {
	digits := strings.TrimPrefix(s, "-")
	ok := len(s) <= maxFloatLen && digits != "" && digits != "."
	point := false
	for i := 0; ok && i < len(digits); i++ {
		switch c := digits[i]; {
		case c >= '0' && c <= '9':
		case c == '.' && !point:
			point = true
		default:
			ok = false
		}
	}
	if f, err := strconv.ParseFloat(s, 64); !ok || err != nil || math.IsInf(f, 0) {
		return fmt.Errorf("%q is not a finite decimal number (digits, at most one '.', no exponent)", s)
	}
	return nil
}
