package policy_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/sdk"
)

// reserved is what the daemon passes: the order hash prefix, eventhost's
// marker prefix and the dead-letter stream.
var reserved = []string{"purchase_order_details:", "eventhost:", "eventhost:deadletter"}

func TestCheck(t *testing.T) {
	patterns := []string{"m:*", "sales_summary"}
	eff := func(cmd, key string, args ...string) sdk.Effect {
		return sdk.Effect{Command: cmd, Key: key, Args: args}
	}
	tests := []struct {
		name     string
		patterns []string
		effect   sdk.Effect
		wantErr  string // "" means allowed
	}{
		// Every allowed command with good arguments.
		{name: "HINCRBY", effect: eff("HINCRBY", "m:h", "f", "-5")},
		{name: "HINCRBYFLOAT", effect: eff("HINCRBYFLOAT", "m:h", "f", "12.5")},
		{name: "HINCRBYFLOAT negative, no integer part", effect: eff("HINCRBYFLOAT", "m:h", "f", "-.5")},
		{name: "HINCRBY zero", effect: eff("HINCRBY", "m:h", "f", "0")},
		{name: "BITFIELD at the bit limit", effect: eff("BITFIELD", "m:b", "INCRBY", "u8", strconv.Itoa(policy.DefaultMaxBitfieldBits-8), "1")},
		{name: "HSET one pair", effect: eff("HSET", "m:h", "f", "v")},
		{name: "HSET two pairs", effect: eff("HSET", "m:h", "f", "v", "g", "w")},
		{name: "SADD", effect: eff("SADD", "m:s", "a", "b")},
		{name: "ZINCRBY", effect: eff("ZINCRBY", "m:z", "0.5", "member")},
		{name: "PFADD", effect: eff("PFADD", "m:p", "x")},
		{name: "INCRBY", effect: eff("INCRBY", "m:c", "3")},
		{name: "BITFIELD INCRBY", effect: eff("BITFIELD", "m:b", "INCRBY", "u8", "8", "1")},
		{name: "BITFIELD OVERFLOW SAT INCRBY", effect: eff("BITFIELD", "m:b", "OVERFLOW", "SAT", "INCRBY", "u32", "64", "1")},
		{name: "BITFIELD SET with # offset", effect: eff("BITFIELD", "m:b", "SET", "i64", "#2", "-7")},
		{name: "BITFIELD u63", effect: eff("BITFIELD", "m:b", "INCRBY", "u63", "0", "1")},
		{name: "BITFIELD i64", effect: eff("BITFIELD", "m:b", "INCRBY", "i64", "0", "1")},
		{name: "XADD", effect: eff("XADD", "m:x", "*", "a", "1")},
		{name: "XADD MAXLEN ~", effect: eff("XADD", "m:x", "MAXLEN", "~", "100", "*", "a", "1", "b", "2")},
		{name: "XADD MAXLEN exact", effect: eff("XADD", "m:x", "MAXLEN", "100", "*", "a", "1")},
		{name: "exact pattern", effect: eff("HINCRBY", "sales_summary", "e:total_tickets_sold", "1")},

		// Commands outside the allowlist.
		{name: "DEL", effect: eff("DEL", "m:x"), wantErr: `command "DEL" is not allowed`},
		{name: "FLUSHALL", effect: eff("FLUSHALL", "m:x"), wantErr: `command "FLUSHALL" is not allowed`},
		{name: "EVAL", effect: eff("EVAL", "m:x", "return 1", "0"), wantErr: `command "EVAL" is not allowed`},
		{name: "GET", effect: eff("GET", "m:x"), wantErr: `command "GET" is not allowed`},
		{name: "lowercase sadd", effect: eff("sadd", "m:x", "a"), wantErr: `command "sadd" is not allowed`},

		// Keys.
		{name: "empty key", effect: eff("SADD", "", "a"), wantErr: "empty key"},
		// Lua's unpack fails past ~8,000 values, outside pcall: refuse first.
		{name: "SADD at the argument bound", effect: eff("SADD", "m:s", members(policy.MaxArgs)...)},
		{name: "SADD past the argument bound", effect: eff("SADD", "m:s", members(policy.MaxArgs+1)...),
			wantErr: "has 1001 arguments; at most 1000 per effect"},
		{name: "key outside patterns", effect: eff("SADD", "other:x", "a"), wantErr: "outside the plugin's patterns"},
		{name: "exact pattern is not a prefix", effect: eff("HINCRBY", "sales_summary2", "f", "1"), wantErr: "outside the plugin's patterns"},
		{name: "order hash refused under *", patterns: []string{"*"},
			effect: eff("HSET", "purchase_order_details:1", "qty", "0"), wantErr: `keys starting with "purchase_order_details:" are reserved`},
		{name: "marker key refused under *", patterns: []string{"*"},
			effect: eff("SADD", "eventhost:x", "a"), wantErr: `keys starting with "eventhost:" are reserved`},
		{name: "dead-letter stream refused under *", patterns: []string{"*"},
			effect: eff("XADD", "eventhost:deadletter", "*", "a", "1"), wantErr: "reserved for eventhost"},
		{name: "order hash refused by explicit pattern", patterns: []string{"purchase_order_details:*"},
			effect: eff("HSET", "purchase_order_details:1", "f", "v"), wantErr: "reserved for eventhost"},
		{name: "anything else allowed under *", patterns: []string{"*"}, effect: eff("SADD", "purchase_orders", "a")},

		// Bad arguments.
		{name: "HINCRBY non-integer", effect: eff("HINCRBY", "m:h", "f", "1.5"), wantErr: `"1.5" is not a 64-bit integer`},
		{name: "HINCRBY text", effect: eff("HINCRBY", "m:h", "f", "abc"), wantErr: "is not a 64-bit integer"},
		{name: "HINCRBY missing increment", effect: eff("HINCRBY", "m:h", "f"), wantErr: "got 1 arguments"},
		{name: "HINCRBYFLOAT inf", effect: eff("HINCRBYFLOAT", "m:h", "f", "inf"), wantErr: `"inf" is not a finite decimal number`},
		{name: "HINCRBYFLOAT nan", effect: eff("HINCRBYFLOAT", "m:h", "f", "nan"), wantErr: `"nan" is not a finite decimal number`},
		{name: "HINCRBYFLOAT text", effect: eff("HINCRBYFLOAT", "m:h", "f", "x"), wantErr: "is not a finite decimal number"},
		{name: "HINCRBYFLOAT exponent", effect: eff("HINCRBYFLOAT", "m:h", "f", "1e3"), wantErr: `"1e3" is not a finite decimal number`},
		{name: "HINCRBYFLOAT hex", effect: eff("HINCRBYFLOAT", "m:h", "f", "0x1p3"), wantErr: "is not a finite decimal number"},
		{name: "HINCRBYFLOAT plus", effect: eff("HINCRBYFLOAT", "m:h", "f", "+1"), wantErr: "is not a finite decimal number"},
		{name: "HINCRBYFLOAT two points", effect: eff("HINCRBYFLOAT", "m:h", "f", "1.2.3"), wantErr: "is not a finite decimal number"},
		{name: "HINCRBYFLOAT too long", effect: eff("HINCRBYFLOAT", "m:h", "f", strings.Repeat("1", 401)), wantErr: "is not a finite decimal number"},
		{name: "ZINCRBY nan", effect: eff("ZINCRBY", "m:z", "NaN", "m"), wantErr: "is not a finite decimal number"},
		// Redis refuses these as ZINCRBY increments; HINCRBYFLOAT takes them.
		{name: "ZINCRBY rounding to 0", effect: eff("ZINCRBY", "m:z", "0."+strings.Repeat("0", 330)+"1", "m"), wantErr: "rounds to 0 as a double"},
		{name: "ZINCRBY negative rounding to 0", effect: eff("ZINCRBY", "m:z", "-0."+strings.Repeat("0", 330)+"1", "m"), wantErr: "rounds to 0 as a double"},
		{name: "ZINCRBY subnormal", effect: eff("ZINCRBY", "m:z", "0."+strings.Repeat("0", 309)+"1", "m")},
		{name: "ZINCRBY zero", effect: eff("ZINCRBY", "m:z", "0.000", "m")},
		{name: "HINCRBYFLOAT past a double's smallest", effect: eff("HINCRBYFLOAT", "m:h", "f", "0."+strings.Repeat("0", 330)+"1")},
		// Go's ParseInt takes these; Redis does not, half way through a batch.
		{name: "HINCRBY plus sign", effect: eff("HINCRBY", "m:h", "f", "+5"), wantErr: `"+5" is not a 64-bit integer`},
		{name: "HINCRBY leading zeros", effect: eff("HINCRBY", "m:h", "f", "007"), wantErr: `"007" is not a 64-bit integer`},
		{name: "HINCRBY minus zero", effect: eff("HINCRBY", "m:h", "f", "-0"), wantErr: `"-0" is not a 64-bit integer`},
		{name: "HINCRBY past int64", effect: eff("HINCRBY", "m:h", "f", "9223372036854775808"), wantErr: "is not a 64-bit integer"},
		{name: "BITFIELD value with plus", effect: eff("BITFIELD", "m:b", "INCRBY", "u8", "0", "+1"), wantErr: `"+1" is not a 64-bit integer`},
		{name: "BITFIELD offset with leading zero", effect: eff("BITFIELD", "m:b", "INCRBY", "u8", "08", "1"), wantErr: "is not a non-negative integer"},
		{name: "BITFIELD past the bit limit", effect: eff("BITFIELD", "m:b", "INCRBY", "u8", strconv.Itoa(policy.DefaultMaxBitfieldBits-7), "1"), wantErr: "limits.max_bitfield_bits"},
		{name: "BITFIELD # offset past the bit limit", effect: eff("BITFIELD", "m:b", "SET", "u8", "#536870911", "1"), wantErr: "limits.max_bitfield_bits"},
		{name: "BITFIELD offset past 2^32", effect: eff("BITFIELD", "m:b", "INCRBY", "u8", "4294967296", "1"), wantErr: "limits.max_bitfield_bits"},
		{name: "INCRBY float", effect: eff("INCRBY", "m:c", "1.0"), wantErr: "is not a 64-bit integer"},
		{name: "SADD no members", effect: eff("SADD", "m:s"), wantErr: "wants at least one member"},
		{name: "BITFIELD GET", effect: eff("BITFIELD", "m:b", "GET", "u8", "0"), wantErr: `subcommand "GET" is not allowed`},
		{name: "BITFIELD GET after INCRBY", effect: eff("BITFIELD", "m:b", "INCRBY", "u8", "0", "1", "GET", "u8", "0"), wantErr: `subcommand "GET" is not allowed`},
		{name: "BITFIELD u64", effect: eff("BITFIELD", "m:b", "INCRBY", "u64", "0", "1"), wantErr: `counter "u64" is not a BITFIELD type`},
		{name: "BITFIELD i65", effect: eff("BITFIELD", "m:b", "INCRBY", "i65", "0", "1"), wantErr: `counter "i65"`},
		{name: "BITFIELD negative offset", effect: eff("BITFIELD", "m:b", "INCRBY", "u8", "-8", "1"), wantErr: `offset "-8" is not a non-negative integer`},
		{name: "BITFIELD negative # offset", effect: eff("BITFIELD", "m:b", "INCRBY", "u8", "#-1", "1"), wantErr: "is not a non-negative integer"},
		{name: "BITFIELD bad overflow", effect: eff("BITFIELD", "m:b", "OVERFLOW", "BOOM", "INCRBY", "u8", "0", "1"), wantErr: `OVERFLOW "BOOM"`},
		{name: "BITFIELD truncated INCRBY", effect: eff("BITFIELD", "m:b", "INCRBY", "u8", "0"), wantErr: "wants type, offset and value"},
		{name: "BITFIELD no subcommand", effect: eff("BITFIELD", "m:b"), wantErr: "wants at least one subcommand"},
		{name: "XADD explicit id", effect: eff("XADD", "m:x", "1-1", "a", "1"), wantErr: "entry id must be *"},
		{name: "XADD odd field count", effect: eff("XADD", "m:x", "*", "a", "1", "b"), wantErr: "wants field/value pairs, got 3 arguments"},
		{name: "XADD no fields", effect: eff("XADD", "m:x", "*"), wantErr: "wants field/value pairs, got 0 arguments"},
		{name: "XADD bad MAXLEN", effect: eff("XADD", "m:x", "MAXLEN", "~", "lots", "*", "a", "1"), wantErr: `MAXLEN "lots" is not a count`},
		{name: "HSET odd args", effect: eff("HSET", "m:h", "f", "v", "g"), wantErr: "wants field/value pairs, got 3 arguments"},
		{name: "HSET field only", effect: eff("HSET", "m:h", "f"), wantErr: "wants field/value pairs, got 1 arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := patterns
			if tt.patterns != nil {
				ps = tt.patterns
			}
			err := policy.New("test-plugin", ps, reserved).Check(tt.effect)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check(%v) = %v, want allowed", tt.effect, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%v) allowed it, want error containing %q", tt.effect, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Check(%v) = %q, want it to contain %q", tt.effect, err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "plugin test-plugin: ") {
				t.Errorf("error %q does not name the plugin", err)
			}
		})
	}
}

func TestCheckAllReportsFirstViolation(t *testing.T) {
	p := policy.New("p", []string{"m:*"}, reserved)
	err := p.CheckAll([]sdk.Effect{
		{Command: "SADD", Key: "m:s", Args: []string{"a"}},
		{Command: "DEL", Key: "m:s"},
		{Command: "SADD", Key: "x:s", Args: []string{"a"}},
	})
	if err == nil || !strings.Contains(err.Error(), `"DEL"`) {
		t.Errorf("CheckAll = %v, want the DEL violation", err)
	}
	if err := p.CheckAll([]sdk.Effect{{Command: "SADD", Key: "m:s", Args: []string{"a"}}}); err != nil {
		t.Errorf("CheckAll of a good effect = %v", err)
	}
}

func TestKeyType(t *testing.T) {
	tests := []struct {
		command, want string
	}{
		{"HINCRBY", "hash"}, {"HINCRBYFLOAT", "hash"}, {"HSET", "hash"}, {"SADD", "set"}, {"ZINCRBY", "zset"},
		{"PFADD", "string"}, {"BITFIELD", "string"}, {"INCRBY", "string"}, {"XADD", "stream"}, {"DEL", ""},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			if got := policy.KeyType(tt.command); got != tt.want {
				t.Errorf("KeyType(%s) = %q, want %q", tt.command, got, tt.want)
			}
		})
	}
}

// TestAllowKeys: allow_keys narrows the declared patterns; a key must match
// both, and the refusal names the key and both pattern sets.
func TestAllowKeys(t *testing.T) {
	declared := []string{"sales:*", "sales_summary"}
	tests := []struct {
		name     string
		declared []string // nil means declared
		allow    []string
		key      string
		wantErr  string // "" means allowed
	}{
		{name: "nil allow narrows nothing", allow: nil, key: "sales:judo"},
		{name: "allowed by both", allow: []string{"sales:*"}, key: "sales:judo"},
		{name: "narrower allow", allow: []string{"sales:j*"}, key: "sales:judo"},
		{name: "exact allow", allow: []string{"sales_summary"}, key: "sales_summary"},
		{name: "declared but not allowed", allow: []string{"sales:*"}, key: "sales_summary",
			wantErr: `plugin p: HINCRBY sales_summary: key is outside the block's allow_keys ["sales:*"] (the plugin declares ["sales:*" "sales_summary"])`},
		{name: "outside the narrower allow", allow: []string{"sales:j*"}, key: "sales:boxing",
			wantErr: `sales:boxing: key is outside the block's allow_keys ["sales:j*"]`},
		{name: "allowed but not declared", allow: []string{"*"}, key: "other",
			wantErr: "key is outside the plugin's patterns"},
		{name: "reserved wins over allow", declared: []string{"*"}, allow: []string{"*"}, key: "eventhost:x",
			wantErr: "reserved for eventhost"},
		{name: "empty allow refuses everything", allow: []string{}, key: "sales:judo",
			wantErr: "allow_keys []"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := declared
			if tt.declared != nil {
				ps = tt.declared
			}
			pol := policy.New("p", ps, reserved)
			pol.AllowKeys = tt.allow
			err := pol.Check(sdk.Effect{Command: "HINCRBY", Key: tt.key, Args: []string{"f", "1"}})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Check(%s) = %v, want allowed", tt.key, err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Check(%s) allowed it, want error containing %q", tt.key, tt.wantErr)
			case err != nil && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Check(%s) = %q, want it to contain %q", tt.key, err, tt.wantErr)
			}
		})
	}
}

func TestOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"sales:*", "sales:judo", true},
		{"sales:*", "sales_summary", false},
		{"*", "anything", true},
		{"*", "*", true},
		{"", "", true},
		{"", "*", true},
		{"", "a", false},
		{"a*", "*b", true},
		{"a*", "b*", false},
		{"*a", "*b", false},
		{"sales:*:total", "sales:judo*", true},
		{"x*y*z", "*q*", true},
		{"ab", "a*b", true},
		{"a*b", "a*c", false},
	}
	for _, tt := range tests {
		if got := policy.Overlaps(tt.a, tt.b); got != tt.want {
			t.Errorf("Overlaps(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := policy.Overlaps(tt.b, tt.a); got != tt.want {
			t.Errorf("Overlaps(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

// TestOverlapsAgreesWithMatchKey checks Overlaps against brute force: every
// pair of patterns over {a, b, *} up to 4 characters overlaps exactly when
// some key over {a, b} of up to 8 characters matches both.
func TestOverlapsAgreesWithMatchKey(t *testing.T) {
	patterns := words("ab*", 4)
	keys := words("ab", 8)
	for _, a := range patterns {
		for _, b := range patterns {
			want := false
			for _, k := range keys {
				if sdk.MatchKey(a, k) && sdk.MatchKey(b, k) {
					want = true
					break
				}
			}
			if got := policy.Overlaps(a, b); got != want {
				t.Errorf("Overlaps(%q, %q) = %v, brute force says %v", a, b, got, want)
			}
		}
	}
}

// words returns every string over alphabet of at most n characters.
func words(alphabet string, n int) []string {
	out := []string{""}
	last := []string{""}
	for range n {
		var next []string
		for _, w := range last {
			for _, c := range alphabet {
				next = append(next, w+string(c))
			}
		}
		out = append(out, next...)
		last = next
	}
	return out
}

func TestUnreachableAllowKeys(t *testing.T) {
	declared := []string{"sales:*", "sales_summary"}
	got := policy.UnreachableAllowKeys(declared, []string{"sales:judo*", "sales_sumary", "*", "invoices:*"})
	want := []string{"sales_sumary", "invoices:*"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("UnreachableAllowKeys = %q, want %q", got, want)
	}
	if got := policy.UnreachableAllowKeys(declared, nil); got != nil {
		t.Errorf("UnreachableAllowKeys(nil) = %q, want nil", got)
	}
}

func members(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

func TestCheckAllLimits(t *testing.T) {
	eff := sdk.Effect{Command: "SADD", Key: "m:s", Args: []string{"0123456789"}}
	many := func(n int) []sdk.Effect {
		out := make([]sdk.Effect, n)
		for i := range out {
			out[i] = eff
		}
		return out
	}
	tests := []struct {
		name    string
		limits  policy.Limits
		effects []sdk.Effect
		wantErr string
	}{
		{name: "at the default effect limit", effects: many(policy.DefaultMaxEffects)},
		{name: "past the default effect limit", effects: many(policy.DefaultMaxEffects + 1), wantErr: "1001 effects for one order; the limit is 1000"},
		{name: "past a configured effect limit", limits: policy.Limits{MaxEffects: 2}, effects: many(3), wantErr: "the limit is 2 (limits.max_effects_per_order)"},
		// SADD + m:s + 10 digits = 17 bytes an effect.
		{name: "at a byte limit", limits: policy.Limits{MaxBytes: 34}, effects: many(2)},
		{name: "past a byte limit", limits: policy.Limits{MaxBytes: 33}, effects: many(2), wantErr: "effects of 34 bytes for one order; the limit is 33"},
		{name: "a configured bit limit", limits: policy.Limits{MaxBitfieldBits: 64},
			effects: []sdk.Effect{{Command: "BITFIELD", Key: "m:b", Args: []string{"INCRBY", "u8", "#8", "1"}}}, wantErr: "beyond 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := policy.New("p", []string{"m:*"}, reserved)
			pol.Limits = tt.limits
			err := pol.CheckAll(tt.effects)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("CheckAll = %v, want allowed", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("CheckAll = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
