// Package policy decides whether a plugin may make a write: the command must
// be on eventhost's allowlist with well-formed arguments (sdk.CheckEffect,
// the check sdktest makes too), and the key must match a pattern the plugin
// declared (narrowed by the config) and lie outside the keys eventhost keeps
// for itself.
package policy

import (
	"fmt"
	"strings"

	"github.com/eventhost/eventhost/sdk"
)

// KeyType returns the Redis type (as TYPE names it) that command writes.
func KeyType(command string) string { return sdk.KeyType(command) }

// Policy is one plugin's write permission. Its exported fields come from
// the config; set them after New and before the first check, which reads
// them without a lock.
type Policy struct {
	plugin   string
	patterns []string
	reserved []string

	// AllowKeys narrows the declared patterns to keys that also match one
	// of them (the plugin block's allow_keys). Nil, the default, narrows
	// nothing; an empty, non-nil one refuses every key (config rejects
	// that before it gets here).
	AllowKeys []string
	// Limits bound one order's effects (the limits block); zero fields,
	// as New leaves them, mean the defaults (Limits.WithDefaults).
	Limits Limits
}

// Limits bound what one plugin may write for one order (the limits block);
// see sdk.Limits, where the checks that need no host config live.
type Limits = sdk.Limits

// The default Limits.
const (
	DefaultMaxBitfieldBits = sdk.DefaultMaxBitfieldBits
	DefaultMaxEffects      = sdk.DefaultMaxEffects
	DefaultMaxBytes        = sdk.DefaultMaxBytes
)

// New returns the policy for plugin, which declared patterns. Keys starting
// with any of reserved (order hashes, eventhost's own keys) are refused even
// when a pattern matches them.
func New(plugin string, patterns, reserved []string) *Policy {
	return &Policy{plugin: plugin, patterns: patterns, reserved: reserved}
}

// Check returns why e is not allowed, or nil: sdk.CheckEffect's reasons
// (the command and its arguments), then the key's.
func (p *Policy) Check(e sdk.Effect) error {
	if err := sdk.CheckEffect(e, p.Limits); err != nil {
		return fmt.Errorf("plugin %s: %w", p.plugin, err)
	}
	return p.checkKey(e)
}

// checkKey returns why e's key is not allowed: reserved for eventhost,
// outside the declared patterns or outside allow_keys.
func (p *Policy) checkKey(e sdk.Effect) error {
	for _, r := range p.reserved {
		if strings.HasPrefix(e.Key, r) {
			return fmt.Errorf("plugin %s: %s %s: keys starting with %q are reserved for eventhost", p.plugin, e.Command, e.Key, r)
		}
	}
	if err := sdk.CheckKey(e, p.patterns); err != nil {
		return fmt.Errorf("plugin %s: %w", p.plugin, err)
	}
	if p.AllowKeys != nil && !sdk.MatchesAny(p.AllowKeys, e.Key) {
		return fmt.Errorf("plugin %s: %s %s: key is outside the block's allow_keys %q (the plugin declares %q)", p.plugin, e.Command, e.Key, p.AllowKeys, p.patterns)
	}
	return nil
}

// CheckAll checks one order's effects, each and together (Limits), and
// returns the first violation: of sdk.CheckEffects (commands, arguments,
// count and size) first, as sdktest finds them, then of the keys.
func (p *Policy) CheckAll(effects []sdk.Effect) error {
	if err := sdk.CheckEffects(effects, p.Limits); err != nil {
		return fmt.Errorf("plugin %s: %w", p.plugin, err)
	}
	for _, e := range effects {
		if err := p.checkKey(e); err != nil {
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
