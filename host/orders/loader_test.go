package orders_test

import (
	"strings"
	"testing"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/orders"
)

// One round trip loads a batch; a key of another type, a missing hash and a
// malformed one are rejected each on its own, and the rest load with their
// done markers.
func TestLoaderRejectsBadKeysOneByOne(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	ctx := t.Context()
	rdb := redistest.Start(t).Client()
	const prefix = "purchase_order_details:"
	rdb.HSet(ctx, prefix+"ok", "ts", "1627000000", "qty", "2", "cost", "3.50", "event", "e", "who", "w", orders.DoneField("p"), "1")
	rdb.Set(ctx, prefix+"a-string", "x", 0)
	rdb.HSet(ctx, prefix+"no-qty", "ts", "1627000000", "cost", "3.50", "event", "e", "who", "w")

	refs := []orders.Ref{{ID: "ok"}, {ID: "a-string"}, {ID: "missing"}, {ID: "no-qty"}}
	loaded, rejected, err := orders.NewLoader(rdb, prefix).Load(ctx, refs)
	if err != nil {
		t.Fatalf("Load: %v (a bad key must not fail the batch)", err)
	}
	if len(loaded) != 1 || loaded[0].Order.ID != "ok" || !loaded[0].Done["p"] || loaded[0].Ref.ID != "ok" {
		t.Errorf("loaded = %+v, want only order ok, done for p", loaded)
	}
	want := map[string]string{
		"a-string": "WRONGTYPE",
		"missing":  "does not exist",
		"no-qty":   "field qty is missing",
	}
	if len(rejected) != len(want) {
		t.Errorf("rejected = %+v, want %d", rejected, len(want))
	}
	for _, r := range rejected {
		if !strings.Contains(r.Reason, want[r.ID]) || !strings.Contains(r.Reason, prefix+r.ID) {
			t.Errorf("rejected %s: reason %q, want it to name the key and say %q", r.ID, r.Reason, want[r.ID])
		}
		// Only a missing hash is Missing: it may yet be stored, and then
		// catch-up must not pass it over.
		if r.Missing != (r.ID == "missing") {
			t.Errorf("rejected %s: Missing = %v", r.ID, r.Missing)
		}
	}
}
