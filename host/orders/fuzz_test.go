package orders_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/sdk"
)

// FuzzParse: whatever a producer stores, Parse never panics, an order it
// accepts is within every limit and safe to hand to a plugin (valid UTF-8,
// no NUL), and a refusal is short however large the input.
func FuzzParse(f *testing.F) {
	seeds := []struct{ id, ts, qty, cost, event, who, name, value string }{
		{"42", "1627000000", "2", "3.50", "Judo", "ann", "seat", "A12"},
		{"2020-0000007", "1626998400", "8", "7600.00", "Athletics: Men's 100m Final", "cust-4711", "", ""},
		{"x", "946684800", "1", "0", "e", "w", "note", "two\nlines\tand a tab"},
		{"x", "4102444800", "1000000", "1000000000", "e", "w", "eventhost:done:p", "1"},
		{"x", "1", "1", "1e308", "e", "w", "", ""},
		{"x", "1627000000", "9223372036854775807", "0x1p3", "e", "w", "", ""},
		{"x", "1627000000", "+5", "inf", "e\x00", "w\xff", "s\xffat", "\x1b[2J"},
		{"\x1b]0;t\a", "-1", "007", "1.00001", "", "", "eventhost:x", strings.Repeat("x", 5000)},
		{"a\u009bb", "1627000000", "1", "NaN", "e", "\u202ew", "a", "\xed\xa0\x80"},
		{strings.Repeat("i", 300), "1627000000", "1", "1.5", "e", "w", "", ""},
		// Valid but for one bound each: the checks below must catch a
		// Parse that lets them through, seeds alone (go test).
		{"x", "1627000000", "1", "1.00001", "e", "w", "", ""},
		{"x", "1627000000", "1000001", "1", "e", "w", "", ""},
		{"x", "4102444801", "1", "1", "e", "w", "", ""},
		{"x", "1627000000", "1", "1000000000.01", "e", "w", "", ""},
		{"x", "1627000000", "1", "1", "e", "w\x1b", "", ""},
		{"x", "1627000000", "1", "1", "e", "w", "n", "\xff"},
	}
	for _, s := range seeds {
		f.Add(s.id, s.ts, s.qty, s.cost, s.event, s.who, s.name, s.value)
	}
	lim := orders.DefaultLimits()
	f.Fuzz(func(t *testing.T, id, ts, qty, cost, event, who, name, value string) {
		fields := map[string]string{"ts": ts, "qty": qty, "cost": cost, "event": event, "who": who}
		if name != "" || value != "" {
			fields[name] = value
		}
		key := "purchase_order_details:" + id
		o, done, err := orders.Parse(orders.Ref{ID: id, Channel: "purchase_orders"}, key, fields, lim)
		if err != nil {
			// The reason quotes at most a little of what was stored: the
			// key (id within its limit) and clipped values.
			if max := 2*min(len(key), len("purchase_order_details:")+lim.MaxIDBytes) + 600; len(err.Error()) > max {
				t.Errorf("reason of %d bytes (over %d): %.200q", len(err.Error()), max, err)
			}
			if o.ID != "" || done != nil {
				t.Errorf("refused order came back: %+v %v", o, done)
			}
			return
		}
		checkAccepted(t, lim, o, cost)
	})
}

func checkAccepted(t *testing.T, lim orders.Limits, o sdk.Order, cost string) {
	t.Helper()
	if o.Qty < 1 || o.Qty > lim.MaxQty {
		t.Errorf("qty %d accepted", o.Qty)
	}
	if o.TS < lim.MinTS || o.TS > lim.MaxTS {
		t.Errorf("ts %d accepted", o.TS)
	}
	if o.Cost < 0 || o.Cost > lim.MaxCost || o.Cost != o.Cost {
		t.Errorf("cost %v accepted", o.Cost)
	}
	if strings.ContainsAny(cost, "eEpPxXiInN+-_ ") {
		t.Errorf("cost %q accepted", cost)
	}
	if _, frac, ok := strings.Cut(cost, "."); ok && (len(frac) == 0 || len(frac) > lim.CostDecimals) {
		t.Errorf("cost %q accepted", cost)
	}
	if len(o.ID) == 0 || len(o.ID) > lim.MaxIDBytes {
		t.Errorf("id of %d bytes accepted", len(o.ID))
	}
	size := 0
	strs := []string{o.ID, o.Event, o.Who}
	for k, v := range o.Extra {
		strs = append(strs, k, v)
		size += len(k) + len(v)
		if strings.HasPrefix(k, keyspace.MarkerPrefix) {
			t.Errorf("marker %q passed to plugins", k)
		}
	}
	if size > lim.MaxOrderBytes {
		t.Errorf("extra fields of %d bytes accepted", size)
	}
	for _, s := range strs {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) || len(s) > lim.MaxFieldBytes+len("purchase_order_details:") {
			t.Errorf("string %.80q accepted", s)
		}
	}
	for _, s := range []string{o.ID, o.Event, o.Who} {
		for _, r := range s {
			if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
				t.Errorf("control %U accepted in %.80q", r, s)
			}
		}
	}
	if o.Event == "" || o.Who == "" {
		t.Errorf("empty event or who accepted: %+v", o)
	}
}
