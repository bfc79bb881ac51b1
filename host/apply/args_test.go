package apply

import (
	"math"
	"strconv"
	"testing"
)

// args must give go-redis exactly the text the plain values would: the
// strings themselves, and numbers in decimal, whether boxed, cut from the
// text or set in a reserved place.
func TestArgsWriteWhatPlainValuesWould(t *testing.T) {
	var a args
	for round := range 2 { // the second round reuses the memory
		a.reset()
		s := "member"
		var d decimalSum
		d.add("12.50")
		d.add("0.25")
		a.boxed("HSET")
		a.str(&s)
		at := a.reserve()
		for _, n := range []int64{0, 255, 256, -1, math.MaxInt64, math.MinInt64} {
			a.int64(n)
		}
		a.decimal(&d)
		a.set(at, 1000+round)
		late := a.reserve()
		a.set(late, 7)
		want := []string{"HSET", "member", strconv.Itoa(1000 + round), "0", "255", "256", "-1",
			"9223372036854775807", "-9223372036854775808", "12.75", "7"}
		got := a.done()
		if len(got) != len(want) {
			t.Fatalf("round %d: %d arguments, want %d", round, len(got), len(want))
		}
		for i, v := range got {
			var text string
			switch v := v.(type) {
			case string:
				text = v
			case *string:
				text = *v
			case int:
				text = strconv.Itoa(v)
			default:
				t.Fatalf("round %d: argument %d is a %T", round, i, v)
			}
			if text != want[i] {
				t.Errorf("round %d: argument %d = %q, want %q", round, i, text, want[i])
			}
		}
	}
}
