package sdk_test

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/sdk"
)

func TestEffectHelpers(t *testing.T) {
	tests := []struct {
		name string
		add  func(e *sdk.Effects)
		want sdk.Effect
	}{
		{name: "Add", add: func(e *sdk.Effects) { e.Add("SADD", "k", "a", "b") },
			want: sdk.Effect{Command: "SADD", Key: "k", Args: []string{"a", "b"}}},
		{name: "HIncrBy", add: func(e *sdk.Effects) { e.HIncrBy("h", "f", -3) },
			want: sdk.Effect{Command: "HINCRBY", Key: "h", Args: []string{"f", "-3"}}},
		{name: "HIncrByFloat", add: func(e *sdk.Effects) { e.HIncrByFloat("h", "f", 12.5) },
			want: sdk.Effect{Command: "HINCRBYFLOAT", Key: "h", Args: []string{"f", "12.5"}}},
		{name: "HSet", add: func(e *sdk.Effects) { e.HSet("h", "f", "v") },
			want: sdk.Effect{Command: "HSET", Key: "h", Args: []string{"f", "v"}}},
		{name: "SAdd", add: func(e *sdk.Effects) { e.SAdd("s", "m1", "m2") },
			want: sdk.Effect{Command: "SADD", Key: "s", Args: []string{"m1", "m2"}}},
		{name: "ZIncrBy", add: func(e *sdk.Effects) { e.ZIncrBy("z", 0.1, "m") },
			want: sdk.Effect{Command: "ZINCRBY", Key: "z", Args: []string{"0.1", "m"}}},
		{name: "PFAdd", add: func(e *sdk.Effects) { e.PFAdd("p", "x") },
			want: sdk.Effect{Command: "PFADD", Key: "p", Args: []string{"x"}}},
		{name: "IncrBy", add: func(e *sdk.Effects) { e.IncrBy("c", 42) },
			want: sdk.Effect{Command: "INCRBY", Key: "c", Args: []string{"42"}}},
		{name: "XAdd without maxlen", add: func(e *sdk.Effects) { e.XAdd("st", 0, "a", "1") },
			want: sdk.Effect{Command: "XADD", Key: "st", Args: []string{"*", "a", "1"}}},
		{name: "XAdd with maxlen", add: func(e *sdk.Effects) { e.XAdd("st", 100, "a", "1", "b", "2") },
			want: sdk.Effect{Command: "XADD", Key: "st", Args: []string{"MAXLEN", "~", "100", "*", "a", "1", "b", "2"}}},
		{name: "BitfieldIncrBy wrap omits OVERFLOW", add: func(e *sdk.Effects) { e.BitfieldIncrBy("b", "u8", 16, 2, sdk.OverflowWrap) },
			want: sdk.Effect{Command: "BITFIELD", Key: "b", Args: []string{"INCRBY", "u8", "16", "2"}}},
		{name: "BitfieldIncrBy empty mode is wrap", add: func(e *sdk.Effects) { e.BitfieldIncrBy("b", "u8", 16, 2, "") },
			want: sdk.Effect{Command: "BITFIELD", Key: "b", Args: []string{"INCRBY", "u8", "16", "2"}}},
		{name: "BitfieldIncrBy sat puts OVERFLOW SAT first", add: func(e *sdk.Effects) { e.BitfieldIncrBy("b", "u32", 64, 1, sdk.OverflowSat) },
			want: sdk.Effect{Command: "BITFIELD", Key: "b", Args: []string{"OVERFLOW", "SAT", "INCRBY", "u32", "64", "1"}}},
		{name: "BitfieldIncrBy fail", add: func(e *sdk.Effects) { e.BitfieldIncrBy("b", "i16", 0, -1, sdk.OverflowFail) },
			want: sdk.Effect{Command: "BITFIELD", Key: "b", Args: []string{"OVERFLOW", "FAIL", "INCRBY", "i16", "0", "-1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e sdk.Effects
			tt.add(&e)
			want := []sdk.Effect{tt.want}
			if got := e.List(); !reflect.DeepEqual(got, want) {
				t.Errorf("effects = %#v, want %#v", got, want)
			}
		})
	}
}

func TestEffectsReset(t *testing.T) {
	var e sdk.Effects
	e.IncrBy("a", 1)
	e.Reset()
	e.IncrBy("b", 2)
	want := []sdk.Effect{{Command: "INCRBY", Key: "b", Args: []string{"2"}}}
	if got := e.List(); !reflect.DeepEqual(got, want) {
		t.Errorf("after Reset effects = %#v, want %#v", got, want)
	}
}

func TestFormatFloat(t *testing.T) {
	// variables, not constants: constant arithmetic is exact and would give 0.3.
	pointOne, pointTwo := 0.1, 0.2
	tests := []struct {
		name string
		in   float64
		want string
	}{
		{name: "0.1 stays short", in: 0.1, want: "0.1"},
		{name: "half", in: 12.5, want: "12.5"},
		{name: "integer has no point", in: 30, want: "30"},
		{name: "zero", in: 0, want: "0"},
		{name: "negative", in: -2.25, want: "-2.25"},
		{name: "large has no exponent", in: 1e21, want: "1000000000000000000000"},
		{name: "small has no exponent", in: 1e-7, want: "0.0000001"},
		{name: "huge has no exponent", in: 1e30, want: "1" + strings.Repeat("0", 30)},
		{name: "sum keeps float noise", in: pointOne + pointTwo, want: "0.30000000000000004"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sdk.FormatFloat(tt.in); got != tt.want {
				t.Errorf("FormatFloat(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestEffectsCopyArgs: a plugin that reuses one slice for several effects
// must not rewrite the effects it already added.
func TestEffectsCopyArgs(t *testing.T) {
	tests := []struct {
		name string
		add  func(e *sdk.Effects, args []string)
		cmd  string
	}{
		{"Add", func(e *sdk.Effects, args []string) { e.Add("SADD", "k", args...) }, "SADD"},
		{"SAdd", func(e *sdk.Effects, args []string) { e.SAdd("k", args...) }, "SADD"},
		{"PFAdd", func(e *sdk.Effects, args []string) { e.PFAdd("k", args...) }, "PFADD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e sdk.Effects
			buf := []string{"a", "b"}
			tt.add(&e, buf)
			buf[0], buf[1] = "c", "d"
			tt.add(&e, buf)
			want := []sdk.Effect{{Command: tt.cmd, Key: "k", Args: []string{"a", "b"}}, {Command: tt.cmd, Key: "k", Args: []string{"c", "d"}}}
			if got := e.List(); !reflect.DeepEqual(got, want) {
				t.Errorf("effects = %q, want %q", got, want)
			}
		})
	}
}

// The helpers format numbers, and Concat builds strings, in storage the
// Effects keeps across orders: the strings must read as strconv and +
// would make them, and never change afterwards, whatever is added later,
// after Reset or through a copy of the Effects.
func TestEffectsStringsNeverChange(t *testing.T) {
	ints := []int64{0, 7, 99, 100, -1, -100, 123456789, math.MaxInt64, math.MinInt64}
	floats := []float64{0, 0.1, 12.5, -2.25, 1e-7, 1e300, math.SmallestNonzeroFloat64, math.MaxFloat64}
	var e sdk.Effects
	var want []sdk.Effect
	for _, n := range ints {
		e.IncrBy("c", n)
		want = append(want, sdk.Effect{Command: "INCRBY", Key: "c", Args: []string{strconv.FormatInt(n, 10)}})
	}
	for _, f := range floats {
		e.HIncrByFloat(e.Concat("h:", "x", ""), e.Concat("f"), f)
		want = append(want, sdk.Effect{Command: "HINCRBYFLOAT", Key: "h:x", Args: []string{"f", sdk.FormatFloat(f)}})
	}
	long := strings.Repeat("k", 5000)
	e.SAdd(e.Concat(long, long), e.Concat())
	want = append(want, sdk.Effect{Command: "SADD", Key: long + long, Args: []string{""}})
	if got := e.List(); !reflect.DeepEqual(got, want) {
		t.Fatalf("effects = %q\nwant %q", got, want)
	}
	// The slices are only valid until Reset (see List); the strings, kept
	// here, for good.
	var kept []sdk.Effect
	for _, f := range e.List() {
		kept = append(kept, sdk.Effect{Command: f.Command, Key: f.Key, Args: append([]string(nil), f.Args...)})
	}
	twin := e // a copy appends to the same storage, after what e wrote
	for i := range 10000 {
		e.Reset()
		e.IncrBy(e.Concat("c:", strconv.Itoa(i)), int64(1000+i))
		twin.HIncrByFloat("h", twin.Concat("f", strconv.Itoa(i)), float64(i)+0.5)
	}
	if !reflect.DeepEqual(kept, want) {
		t.Errorf("after more effects, the first ones read %q\nwant %q", kept, want)
	}
	if got, want := e.List(), []sdk.Effect{{Command: "INCRBY", Key: "c:9999", Args: []string{"10999"}}}; !reflect.DeepEqual(got, want) {
		t.Errorf("last effects = %q, want %q", got, want)
	}
}
