package sdk

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

// The host decodes what an untrusted plugin sends. These fuzz targets feed
// the decoders arbitrary bytes, seeded with real encodings (what the bundled
// plugins answer), and check that they never panic, that whatever they
// accept is within the bounds, and that it encodes back to the same value.
// `make fuzz` runs them for longer; `go test` runs the seeds.

// realEffects is what the bundled plugins answer for one order.
func realEffects() [][]Effect {
	var out Effects
	var seeds [][]Effect
	add := func(f func()) {
		out.Reset()
		f()
		seeds = append(seeds, append([]Effect(nil), out.List()...))
	}
	add(func() { out.SAdd("invoices:ann", "42-0000001") })
	add(func() {
		out.SAdd("sales:Judo: Men's -73kg", "42-0000001")
		out.HIncrByFloat("sales_summary", "Judo: Men's -73kg:total_sales", 120.75)
		out.HIncrBy("sales_summary", "Judo: Men's -73kg:total_tickets_sold", 3)
	})
	add(func() {
		out.BitfieldIncrBy("sales_histogram", "u8", 1627000000%86400, 3, OverflowSat)
		out.BitfieldIncrBy("sales_histogram:Judo", "u8", 42, 3, OverflowSat)
	})
	add(func() {
		out.XAdd("log", 1000, "id", "1", "note", "ü\x00\xff")
		out.ZIncrBy("top", 2.5, "ann")
		out.PFAdd("uniq", "a", "b")
		out.HSet("h", "", "")
		out.IncrBy("n", -1)
	})
	add(func() {})
	return seeds
}

// checkDecoded fails when effects break a bound the decoders promise.
func checkDecoded(t *testing.T, effects []Effect, size int) {
	t.Helper()
	if len(effects) > MaxEffects {
		t.Fatalf("decoded %d effects, more than %d", len(effects), MaxEffects)
	}
	total := 0
	for i, e := range effects {
		if len(e.Args) > MaxEffectArgs {
			t.Fatalf("effect %d: %d arguments, more than %d", i, len(e.Args), MaxEffectArgs)
		}
		for _, s := range append([]string{e.Command, e.Key}, e.Args...) {
			if len(s) > MaxArgBytes {
				t.Fatalf("effect %d: a string of %d bytes, more than %d", i, len(s), MaxArgBytes)
			}
			total += len(s)
		}
	}
	if total > size {
		t.Fatalf("decoded %d bytes of strings from %d bytes of input", total, size)
	}
}

func FuzzUnpackEffects(f *testing.F) {
	for _, effects := range realEffects() {
		f.Add(packEffects(effects))
	}
	f.Add([]byte{2, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		effects, err := unpackEffects(data)
		if err != nil {
			return
		}
		checkDecoded(t, effects, len(data))
		again, err := unpackEffects(packEffects(effects))
		if err != nil {
			t.Fatalf("re-encoded effects do not decode: %v", err)
		}
		if len(effects) > 0 && !reflect.DeepEqual(again, effects) {
			t.Fatalf("round trip changed the effects:\n got %q\nwant %q", again, effects)
		}
	})
}

func FuzzUnpackOrders(f *testing.F) {
	f.Add(packOrders([]Order{
		{ID: "42-0000001", Channel: "purchase_orders", TS: 1627000000, Qty: 3, Cost: 120.75, Event: "Judo: Men's -73kg", Who: "ann"},
		{ID: "x", Extra: map[string]string{"coupon": "X1"}},
	}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		orders, err := unpackOrders(data)
		if err != nil {
			return
		}
		again, err := unpackOrders(packOrders(orders))
		if err != nil {
			t.Fatalf("re-encoded orders do not decode: %v", err)
		}
		if len(again) != len(orders) {
			t.Fatalf("round trip: %d orders, want %d", len(again), len(orders))
		}
	})
}

// FuzzResultsFromProto feeds arbitrary ProcessResponse messages (any
// encoding) to the host's converter for a batch of n orders: it must return
// exactly n results, each the plugin's answer within the bounds or a
// permanent failure.
func FuzzResultsFromProto(f *testing.F) {
	seeds := realEffects()
	results := make([]Result, len(seeds))
	for i, e := range seeds {
		results[i].Effects = e
	}
	results = append(results, Result{Err: "cannot handle \xff", Permanent: true})
	for _, packed := range []bool{true, false} {
		b, err := proto.Marshal(ResultsToProto(results, packed))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(len(results)))
		f.Add(b, uint8(len(results)-1))
	}
	// The whole answer packed, as a current plugin sends it.
	b, err := proto.Marshal(&pluginv1.ProcessResponse{PackedResults: packResults(moody{}, []Order{
		{ID: "1", Event: "a", Qty: 2}, {ID: "boom"}, {ID: "no"}, {ID: "never"}, {ID: "bin"}, {ID: "none"},
	})})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, uint8(6))
	f.Add(b, uint8(5))
	f.Add(b, uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		var resp pluginv1.ProcessResponse
		if proto.Unmarshal(data, &resp) != nil {
			return
		}
		got := ResultsFromProto(&resp, int(n))
		if len(got) != int(n) {
			t.Fatalf("%d results for a batch of %d", len(got), n)
		}
		for i, r := range got {
			if len(r.Err) > MaxErrorBytes+len("… (cut)") {
				t.Fatalf("result %d: error text of %d bytes", i, len(r.Err))
			}
			if r.HostFailure != "" || r.Attempts != 0 {
				t.Fatalf("result %d: host-side fields set from the wire: %+v", i, r)
			}
			checkDecoded(t, r.Effects, len(data))
		}
		// Decoded into reused storage, after another answer and after a
		// Reset, as the host does: the same results, and the first
		// decode's untouched until the Reset.
		var s AnswerStore
		first := s.ResultsFromProto(&resp, int(n))
		second := s.ResultsFromProto(&resp, int(n))
		if !reflect.DeepEqual(first, got) || !reflect.DeepEqual(second, got) {
			t.Fatalf("decoded into one store twice: %+v and %+v, want %+v", first, second, got)
		}
		s.Reset()
		if again := s.ResultsFromProto(&resp, int(n)); !reflect.DeepEqual(again, got) {
			t.Fatalf("decoded into a reset store: %+v, want %+v", again, got)
		}
	})
}
