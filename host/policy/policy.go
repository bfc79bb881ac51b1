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
	allow []string
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
	p := &Policy{plugin: plugin, patterns: patterns, reserved: reserved}
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
	if err := checkArgs(e.Command, e.Args); err != nil {
		return fmt.Errorf("plugin %s: %s %s: %w", p.plugin, e.Command, e.Key, err)
	}
	return nil
}

// CheckAll checks every effect, returning the first violation.
func (p *Policy) CheckAll(effects []sdk.Effect) error {
	for _, e := range effects {
		if err := p.Check(e); err != nil {
			return err
		}
	}
	return nil
}

// MaxArgs bounds one effect's arguments. The apply script hands them to Redis
// with Lua's unpack, which fails past about 8,000 values, and fails outside
// pcall: half a batch would be written. An effect that needs more is split
// into several by the plugin. The SDK's decoder holds to the same bound.
const MaxArgs = sdk.MaxEffectArgs

func checkArgs(cmd string, args []string) error {
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
		return checkBitfield(args)
	case "XADD":
		return checkXAdd(args)
	}
	return nil
}

// checkBitfield allows only writing subcommands; GET would turn a write
// batch into a read.
func checkBitfield(args []string) error {
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
			if err := checkBitfieldType(args[i+1]); err != nil {
				return err
			}
			off := strings.TrimPrefix(args[i+2], "#")
			if n, err := strconv.ParseInt(off, 10, 64); err != nil || n < 0 {
				return fmt.Errorf("offset %q is not a non-negative integer", args[i+2])
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

func checkBitfieldType(t string) error {
	if len(t) < 2 || (t[0] != 'u' && t[0] != 'i') {
		return fmt.Errorf("type %q is not u1..u63 or i1..i64", t)
	}
	bits, err := strconv.Atoi(t[1:])
	max := 64
	if t[0] == 'u' {
		max = 63
	}
	if err != nil || bits < 1 || bits > max {
		return fmt.Errorf("type %q is not u1..u63 or i1..i64", t)
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

func isInt(s string) error {
	if _, err := strconv.ParseInt(s, 10, 64); err != nil {
		return fmt.Errorf("%q is not a 64-bit integer", s)
	}
	return nil
}

func isFloat(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Errorf("%q is not a finite number", s)
	}
	return nil
}
