package orders_test

import (
	"strings"
	"testing"

	"github.com/eventhost/eventhost/host/orders"
)

// small is a set of limits small enough to cross in a table.
var small = orders.Limits{
	MaxIDBytes: 8, MaxOrderBytes: 100, MaxFieldBytes: 20,
	MaxQty: 10, MaxCost: 500, CostDecimals: 2, MinTS: 1000, MaxTS: 2000,
}

// smallOrder is valid under small, with overrides as in valid.
func smallOrder(overrides ...string) map[string]string {
	f := valid(overrides...)
	for k, v := range map[string]string{"ts": "1500", "qty": "3", "cost": "12.5"} {
		if _, set := f[k]; set && !overridden(overrides, k) {
			f[k] = v
		}
	}
	return f
}

func overridden(overrides []string, k string) bool {
	for i := 0; i+1 < len(overrides); i += 2 {
		if overrides[i] == k {
			return true
		}
	}
	return false
}

// TestParseLimits: each bound accepts its edge and refuses one step past
// it, and the reason names the limit and its value, word for word: that is
// what a person reads in the dead letter.
func TestParseLimits(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		fields map[string]string
		want   string // "" when the order is valid
	}{
		{name: "at every edge", id: "12345678", fields: smallOrder("ts", "2000", "qty", "10", "cost", "500.00")},
		{name: "lowest ts, qty and cost", fields: smallOrder("ts", "1000", "qty", "1", "cost", "0")},
		{name: "cost with no fraction", fields: smallOrder("cost", "7")},
		{name: "extra value with a line break and a tab", fields: smallOrder("note", "a\tb\r\nc")},
		{name: "unicode event", fields: smallOrder("event", "Judo – 決勝")},
		{name: "hash at its size limit, markers not counted", fields: smallOrder("a", strings.Repeat("x", 20), "b", strings.Repeat("x", 20), "c", strings.Repeat("x", 20), "dd", "xx",
			"eventhost:done:a", "1700", "eventhost:done:b", "1700", "eventhost:done:c", "1700")},

		{name: "id too long", id: "123456789", want: "order id of 9 bytes exceeds limits.max_id_bytes = 8"},
		{name: "id not UTF-8", id: "a\xffb", want: `order id "a\xffb" is not valid UTF-8`},
		{name: "id with a newline", id: "a\nb", want: `order id "a\nb" holds control character U+000A at byte 1`},
		{name: "id with an escape", id: "\x1b[2J", want: `order id "\x1b[2J" holds control character U+001B at byte 0`},
		{name: "id with a C1 control", id: "a\u009bb", want: `order id "a\u009bb" holds control character U+009B at byte 1`},
		{name: "qty over", fields: smallOrder("qty", "11"), want: key + `: field qty = "11" exceeds limits.max_qty = 10`},
		{name: "qty past int64", fields: smallOrder("qty", "9223372036854775808"), want: key + `: field qty = "9223372036854775808" exceeds limits.max_qty = 10`},
		{name: "ts over", fields: smallOrder("ts", "2001"), want: key + `: field ts = "2001" exceeds limits.max_ts = 2000`},
		{name: "ts under", fields: smallOrder("ts", "999"), want: key + `: field ts = "999" is before limits.min_ts = 1000`},
		{name: "cost over", fields: smallOrder("cost", "500.01"), want: key + `: field cost = "500.01" exceeds limits.max_cost = 500`},
		{name: "cost 1e19 written out", fields: smallOrder("cost", "1"+strings.Repeat("0", 19)), want: key + `: field cost = "10000000000000000000" exceeds limits.max_cost = 500`},
		{name: "cost 1e308 written out", fields: smallOrder("cost", "1"+strings.Repeat("0", 308)), want: key + `: field "cost" holds 309 bytes, over limits.max_field_bytes = 20`},
		{name: "cost decimals", fields: smallOrder("cost", "1.005"), want: key + `: field cost = "1.005" has 3 fraction digits, over limits.cost_decimals = 2`},
		{name: "cost exponent", fields: smallOrder("cost", "1e3"), want: key + `: field cost = "1e3" is not a non-negative number written as digits with an optional point (no sign, exponent, hex, inf or nan)`},
		{name: "cost 1e308", fields: smallOrder("cost", "1e308"), want: key + `: field cost = "1e308" is not a non-negative number`},
		{name: "cost hex", fields: smallOrder("cost", "0x1p3"), want: key + `: field cost = "0x1p3" is not a non-negative number`},
		{name: "cost inf", fields: smallOrder("cost", "inf"), want: key + `: field cost = "inf" is not a non-negative number`},
		{name: "cost nan", fields: smallOrder("cost", "nan"), want: key + `: field cost = "nan" is not a non-negative number`},
		{name: "cost plus sign", fields: smallOrder("cost", "+1"), want: key + `: field cost = "+1" is not a non-negative number`},
		{name: "cost underscore", fields: smallOrder("cost", "1_000"), want: key + `: field cost = "1_000" is not a non-negative number`},
		{name: "cost bare point", fields: smallOrder("cost", "1."), want: key + `: field cost = "1." is not a non-negative number`},
		{name: "cost leading point", fields: smallOrder("cost", ".5"), want: key + `: field cost = ".5" is not a non-negative number`},
		{name: "field value too long", fields: smallOrder("seat", strings.Repeat("x", 21)), want: key + `: field "seat" holds 21 bytes, over limits.max_field_bytes = 20`},
		{name: "field name too long", fields: smallOrder(strings.Repeat("n", 21), "v"), want: key + `: a field name of 21 bytes ("nnnnnnnnnnnnnnnnnnnnn") exceeds limits.max_field_bytes = 20`},
		{name: "marker too long", fields: smallOrder("eventhost:x", strings.Repeat("x", 21)), want: key + `: field "eventhost:x" holds 21 bytes, over limits.max_field_bytes = 20`},
		{name: "hash too big", fields: smallOrder("a", strings.Repeat("x", 20), "b", strings.Repeat("x", 20), "c", strings.Repeat("x", 20), "dd", "xxx"), want: key + " holds 101 bytes, over limits.max_order_bytes = 100"},
		{name: "event not UTF-8", fields: smallOrder("event", "Judo\xc3"), want: key + `: field "event" is not valid UTF-8`},
		{name: "who not UTF-8", fields: smallOrder("who", "\xed\xa0\x80"), want: key + `: field "who" is not valid UTF-8`},
		{name: "extra value not UTF-8", fields: smallOrder("seat", "\xff"), want: key + `: field "seat" is not valid UTF-8`},
		{name: "extra name not UTF-8", fields: smallOrder("s\xffat", "1"), want: key + `: field name "s\xffat" is not valid UTF-8`},
		{name: "event with a newline", fields: smallOrder("event", "Judo\nFinal"), want: key + `: field "event" holds control character U+000A at byte 4`},
		{name: "who with a NUL", fields: smallOrder("who", "ann\x00"), want: key + `: field "who" holds control character U+0000 at byte 3`},
		{name: "who with an escape", fields: smallOrder("who", "\x1b]0;pwned\a"), want: key + `: field "who" holds control character U+001B at byte 0`},
		{name: "extra value with a NUL", fields: smallOrder("note", "a\x00"), want: key + `: field "note" holds control character U+0000 at byte 1`},
		{name: "extra name with a newline", fields: smallOrder("no\nte", "a"), want: key + `: field name "no\nte" holds control character U+000A at byte 2`},
		{name: "two bad fields: the first by name is reported", fields: smallOrder("who", "\xff", "event", "\xff", "seat", "\xff"), want: key + `: field "event" is not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.id
			if id == "" {
				id = "42"
			}
			fields := tt.fields
			if fields == nil {
				fields = smallOrder()
			}
			for range 3 { // map order must not change the verdict
				o, _, err := orders.Parse(orders.Ref{ID: id, Channel: "c"}, key, fields, small)
				if tt.want == "" {
					if err != nil {
						t.Fatalf("Parse: %v", err)
					}
					if o.ID != id || o.Event != fields["event"] {
						t.Errorf("order = %+v", o)
					}
					continue
				}
				if err == nil {
					t.Fatalf("Parse accepted %q: %+v", fields, o)
				}
				if got := strings.TrimPrefix(err.Error(), "order hash "); got != tt.want && !strings.HasPrefix(got, tt.want) {
					t.Fatalf("error\n %s\nwant\n %s", got, tt.want)
				}
			}
		})
	}
}

// TestDefaultLimitsAcceptGeneratedOrders: the defaults must never refuse
// what the bundled load generator and the tutorial write.
func TestDefaultLimits(t *testing.T) {
	lim := orders.DefaultLimits()
	want := orders.Limits{MaxIDBytes: 256, MaxOrderBytes: 65536, MaxFieldBytes: 4096, MaxQty: 1000000,
		MaxCost: 1e9, CostDecimals: 4, MinTS: 946684800, MaxTS: 4102444800}
	if lim != want {
		t.Errorf("DefaultLimits = %+v, want %+v", lim, want)
	}
	if err := lim.CheckID(strings.Repeat("i", 256)); err != nil {
		t.Errorf("CheckID of 256 bytes: %v", err)
	}
	if err := lim.CheckID(strings.Repeat("i", 1<<20)); err == nil || len(err.Error()) > 100 {
		t.Errorf("CheckID of 1 MiB = %v, want a short refusal", err)
	}
}
