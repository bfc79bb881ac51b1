package sdk

import (
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
