package sdk

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// keyTypes are the commands a plugin may send, with the Redis type (as TYPE
// names it) each needs its key to have.
var keyTypes = map[string]string{
	"HINCRBY": "hash", "HINCRBYFLOAT": "hash", "HSET": "hash",
	"SADD": "set", "ZINCRBY": "zset", "PFADD": "string", "BITFIELD": "string",
	"INCRBY": "string", "XADD": "stream",
}

// KeyType returns the Redis type (as TYPE names it) that command writes, or
// "" for a command outside the allowlist.
func KeyType(command string) string { return keyTypes[command] }

// Limits bound what one plugin may write for one order, so that one order
// cannot make Redis allocate, or one apply carry, more than an operator
// allowed (the host's limits block). The zero value of a field means its
// default.
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

// WithDefaults returns l with its zero fields set to their defaults.
func (l Limits) WithDefaults() Limits {
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

// CheckEffect returns why the host would refuse e whatever its config, or
// nil: a command outside the allowlist, an empty key, or arguments Redis
// would refuse half way through a batch (integers with '+' or leading
// zeros, numbers that are not plain decimals, BITFIELD subcommands other
// than OVERFLOW, INCRBY and SET or bits beyond l.MaxBitfieldBits, XADD with
// an id other than *). The host checks the key against the plugin's
// patterns (see CheckKey) and its own reserved keys besides. sdktest makes
// the same check, so a plugin that passes its tests passes the host's.
func CheckEffect(e Effect, l Limits) error {
	if _, ok := keyTypes[e.Command]; !ok {
		return fmt.Errorf("command %q is not allowed (allowed: HINCRBY HINCRBYFLOAT HSET SADD ZINCRBY PFADD BITFIELD INCRBY XADD)", e.Command)
	}
	if e.Key == "" {
		return fmt.Errorf("%s with an empty key", e.Command)
	}
	if err := checkArgs(e.Command, e.Args, l.WithDefaults()); err != nil {
		return fmt.Errorf("%s %s: %w", e.Command, e.Key, err)
	}
	return nil
}

// CheckEffects checks one order's effects, each (CheckEffect) and together
// (l's count and size), returning the first violation.
func CheckEffects(effects []Effect, l Limits) error {
	l = l.WithDefaults()
	if len(effects) > l.MaxEffects {
		return fmt.Errorf("%d effects for one order; the limit is %d (limits.max_effects_per_order)", len(effects), l.MaxEffects)
	}
	size := 0
	for _, e := range effects {
		if err := CheckEffect(e, l); err != nil {
			return err
		}
		size += len(e.Command) + len(e.Key)
		for _, a := range e.Args {
			size += len(a)
		}
	}
	if size > l.MaxBytes {
		return fmt.Errorf("effects of %d bytes for one order; the limit is %d (limits.max_effect_bytes_per_order)", size, l.MaxBytes)
	}
	return nil
}

// CheckKey returns why the host would refuse e's key given the patterns
// the plugin declared (Description.Keys), or nil.
func CheckKey(e Effect, patterns []string) error {
	if !MatchesAny(patterns, e.Key) {
		return fmt.Errorf("%s %s: key is outside the plugin's patterns %q", e.Command, e.Key, patterns)
	}
	return nil
}

func checkArgs(cmd string, args []string, l Limits) error {
	if len(args) > MaxEffectArgs {
		return fmt.Errorf("has %d arguments; at most %d per effect (split it into several effects)", len(args), MaxEffectArgs)
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
		if err := isFloat(args[0]); err != nil {
			return err
		}
		// Redis reads a score increment as a double and refuses a non-zero
		// one that rounds to 0 (HINCRBYFLOAT's long double takes it).
		if f, _ := strconv.ParseFloat(args[0], 64); f == 0 && strings.ContainsAny(args[0], "123456789") {
			return fmt.Errorf("%q rounds to 0 as a double, which Redis refuses as a ZINCRBY increment", args[0])
		}
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
			bits, err := ParseCounter(args[i+1])
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

// maxFloatLen bounds a float argument; FormatFloat needs at most about 330
// characters for a float64 without exponent, and increments are summed
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
