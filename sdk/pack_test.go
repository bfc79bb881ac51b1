package sdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestPackOrdersRoundTrip(t *testing.T) {
	orders := []Order{
		{ID: "1", Channel: "purchase_orders", TS: 1627000000, Qty: 3, Cost: 12.5, Event: "Judo: Men's -73kg", Who: "ann"},
		{ID: "", Channel: "", TS: -1, Qty: math.MaxInt64, Cost: math.Inf(1), Event: "ü\x00\xff", Who: "b",
			Extra: map[string]string{"coupon": "X1", "": ""}},
		{ID: strings.Repeat("long", 100), Cost: -0.0},
	}
	got, err := unpackOrders(packOrders(orders))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, orders) {
		t.Errorf("round trip:\n got %#v\nwant %#v", got, orders)
	}
	if got, err := unpackOrders(nil); err != nil || len(got) != 0 {
		t.Errorf("empty batch = %v, %v", got, err)
	}
}

func TestPackEffectsRoundTrip(t *testing.T) {
	effects := []Effect{
		{Command: "BITFIELD", Key: "h", Args: []string{"OVERFLOW", "SAT", "INCRBY", "u32", "32", "3"}},
		{Command: "SADD", Key: "sales:e", Args: []string{"1"}},
		{Command: "INCRBY", Key: "k"}, // no args: Args stays nil
		{Command: "HSET", Key: "bin\xff", Args: []string{"", "\x00"}},
	}
	got, err := unpackEffects(packEffects(effects))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, effects) {
		t.Errorf("round trip:\n got %#v\nwant %#v", got, effects)
	}
	// Args windows share one slice: appending to one must not clobber the next.
	got[0].Args = append(got[0].Args, "x")
	if got[1].Args[0] != "1" {
		t.Errorf("appending to one effect's args changed the next: %v", got[1].Args)
	}
}

// A plugin that sends garbage gets an error naming what is wrong, never a
// panic or a silently shortened batch.
func TestUnpackRejectsMalformed(t *testing.T) {
	orders := packOrders([]Order{{ID: "1", Channel: "c", Event: "e", Who: "w", Extra: map[string]string{"a": "b"}}})
	effects := packEffects([]Effect{{Command: "SADD", Key: "k", Args: []string{"m"}}})
	for cut := 1; cut < len(orders); cut++ {
		if _, err := unpackOrders(orders[:cut]); err == nil {
			t.Errorf("orders cut to %d of %d bytes decoded without error", cut, len(orders))
		}
	}
	for cut := 1; cut < len(effects); cut++ {
		if _, err := unpackEffects(effects[:cut]); err == nil {
			t.Errorf("effects cut to %d of %d bytes decoded without error", cut, len(effects))
		}
	}
	if _, err := unpackEffects([]byte{1, 0}); err == nil || !strings.Contains(err.Error(), "claims 1 strings") {
		t.Errorf("an effect of one string: err = %v", err)
	}
	tooMany := make([]string, MaxEffectArgs+1)
	if _, err := unpackEffects(packEffects([]Effect{{Command: "SADD", Key: "k", Args: tooMany}})); err == nil {
		t.Errorf("an effect of %d arguments decoded without error", len(tooMany))
	}
	if _, err := unpackEffects(packEffects(make([]Effect, MaxEffects+1))); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("%d effects for one order: err = %v", MaxEffects+1, err)
	}
	if _, err := unpackEffects([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}); err == nil {
		t.Error("an overlong varint decoded without error")
	}
}

func BenchmarkUnpackEffects(b *testing.B) {
	data := packEffects([]Effect{
		{Command: "SADD", Key: "sales:Judo", Args: []string{"42-0000001"}},
		{Command: "HINCRBYFLOAT", Key: "sales_summary", Args: []string{"Judo:total_sales", "120.75"}},
		{Command: "HINCRBY", Key: "sales_summary", Args: []string{"Judo:total_tickets_sold", "3"}},
	})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := unpackEffects(data); err != nil {
			b.Fatal(err)
		}
	}
}

// moody answers like a real plugin for most orders and fails on some: a
// panic ("boom"), a transient error ("no"), a permanent one ("never"), an
// answer over the bounds ("huge") and error text that is not UTF-8 ("bin").
type moody struct{}

func (moody) Describe() Description  { return Description{Name: "moody", Keys: []string{"*"}} }
func (moody) Configure(Config) error { return nil }
func (moody) Handle(o Order, out *Effects) error {
	switch o.ID {
	case "boom":
		out.SAdd("partial", o.ID) // must not leak into the result
		panic("kaboom")
	case "no":
		return errors.New("cannot handle this one")
	case "never":
		return Permanent(errors.New("never valid"))
	case "huge":
		for range MaxEffects + 1 {
			out.IncrBy("n", 1)
		}
		return nil
	case "bin":
		return errors.New("bad byte \xff here")
	case "none":
		return nil
	}
	out.SAdd("sales:"+o.Event, o.ID)
	out.BitfieldIncrBy("h:"+o.Event, "u32", 32, o.Qty, OverflowSat)
	return nil
}

// firstLine is s up to its first line break: a panic's error text ends with
// the stack, which differs between callers.
func firstLine(s string) string { before, _, _ := strings.Cut(s, "\n"); return before }

// The answer packed whole decodes to exactly what ProcessBatch returns
// in process, error for error, with the host's repair of error text.
func TestPackResultsEqualsProcessBatch(t *testing.T) {
	orders := []Order{
		{ID: "1", Event: "a", Qty: 2}, {ID: "boom"}, {ID: "2", Event: "b", Qty: 1}, {ID: "no"},
		{ID: "never"}, {ID: "huge"}, {ID: "bin"}, {ID: "none"}, {ID: "3", Event: "a", Qty: 7},
	}
	want := ProcessBatch(moody{}, orders)
	got := unpackResults(packResults(moody{}, orders), len(orders))
	if len(got) != len(orders) {
		t.Fatalf("%d results for %d orders", len(got), len(orders))
	}
	for i := range orders {
		w, g := want[i], got[i]
		w.Err, g.Err = firstLine(boundedText(w.Err)), firstLine(g.Err)
		if len(w.Effects) == 0 {
			w.Effects = nil
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("order %s:\n got %#v\nwant %#v", orders[i].ID, g, w)
		}
	}
	if got[6].Err != "bad byte \uFFFD here" {
		t.Errorf("error text that is not UTF-8 = %q, want it repaired", got[6].Err)
	}
	// Effects and arguments share slices: appending to one order's must
	// not overwrite the next one's.
	got[0].Effects = append(got[0].Effects, Effect{Command: "X"})
	got[0].Effects[0].Args = append(got[0].Effects[0].Args, "x")
	if got[2].Effects[0].Command != "SADD" || got[0].Effects[1].Args[0] != "OVERFLOW" {
		t.Errorf("appending to one result changed another: %#v, %#v", got[0].Effects, got[2].Effects)
	}
}

// A plugin's answer that breaks the encoding or the bounds costs the
// orders whose results are broken, never a panic; a result that cannot be
// found costs the orders from there on, and more results than orders cost
// the batch.
func TestUnpackResultsMalformed(t *testing.T) {
	good := func(id string) []byte {
		return packResults(moody{}, []Order{{ID: id, Event: "e", Qty: 1}})
	}
	record := func(body ...byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(body))), body...) }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tooMany := record(append([]byte{0, 0}, packEffects(make([]Effect, MaxEffects+1))...)...)
	longErr := record(append(append([]byte{1}, binary.AppendUvarint(nil, MaxErrorBytes+10)...), strings.Repeat("e", MaxErrorBytes+10)...)...)
	tests := []struct {
		name string
		data []byte
		n    int
		// want is, per order, "" for the plugin's answer (effects on "e")
		// or a substring of the failure.
		want []string
	}{
		{"two answers for three orders", join(good("1"), good("2")), 3, []string{"", "", "plugin returned no result for this order"}},
		{"three answers for two orders", join(good("1"), good("2"), good("3")), 2, []string{"more than the 2 orders", "more than the 2 orders"}},
		{"an effect of one string", join(good("1"), record(0, 0, 1, 0), good("3")), 3, []string{"", "malformed answer: packed effects: effect 0 claims 1 strings", ""}},
		{"flags without error text", join(good("1"), record(0), good("3")), 3, []string{"", "malformed answer: packed result: truncated", ""}},
		{"too many effects", join(good("1"), tooMany, good("3")), 3, []string{"", fmt.Sprintf("more than %d effects for one order", MaxEffects), ""}},
		{"a length past the end", join(good("1"), []byte{50, 0, 0}), 3, []string{"", "malformed answer: packed results: truncated", "malformed answer: packed results: truncated"}},
		{"error text over the bound", join(longErr, good("2")), 2, []string{"… (cut)", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := unpackResults(tt.data, tt.n)
			if len(got) != tt.n {
				t.Fatalf("%d results for %d orders", len(got), tt.n)
			}
			for i, r := range got {
				if tt.want[i] == "" {
					if r.Err != "" || len(r.Effects) != 2 || r.Effects[0].Key != "sales:e" {
						t.Errorf("order %d: %#v, want the plugin's answer", i, r)
					}
					continue
				}
				if !strings.Contains(r.Err, tt.want[i]) || !r.Permanent && !strings.Contains(tt.want[i], "cut") || r.Effects != nil {
					t.Errorf("order %d: %#v, want a failure with %q", i, r, tt.want[i])
				}
			}
		})
	}
	if got := unpackResults(longErr, 1)[0].Err; len(got) > MaxErrorBytes+len("… (cut)") {
		t.Errorf("error text of %d bytes kept", len(got))
	}
}
