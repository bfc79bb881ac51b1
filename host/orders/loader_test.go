package orders_test

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
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
	rdb.HSet(ctx, prefix+"ok", "ts", "1627000000", "qty", "2", "cost", "3.50", "event", "e", "who", "w", keyspace.DoneField("p"), "1")
	rdb.Set(ctx, prefix+"a-string", "x", 0)
	rdb.HSet(ctx, prefix+"no-qty", "ts", "1627000000", "cost", "3.50", "event", "e", "who", "w")
	// A cluster's tombstone: an order lost after its effects landed.
	rdb.HSet(ctx, prefix+"tombstone", keyspace.DoneField("p"), "1")

	refs := []orders.Ref{{ID: "ok"}, {ID: "a-string"}, {ID: "missing"}, {ID: "no-qty"}, {ID: "tombstone"}}
	loaded, rejected, err := orders.NewLoader(rdb, prefix).Load(ctx, refs)
	if err != nil {
		t.Fatalf("Load: %v (a bad key must not fail the batch)", err)
	}
	if len(loaded) != 1 || loaded[0].Order.ID != "ok" || !loaded[0].Done["p"] || loaded[0].Ref.ID != "ok" {
		t.Errorf("loaded = %+v, want only order ok, done for p", loaded)
	}
	want := map[string]string{
		"a-string":  "WRONGTYPE",
		"missing":   "does not exist",
		"no-qty":    "field qty is missing",
		"tombstone": "holds only eventhost's markers",
	}
	if len(rejected) != len(want) {
		t.Errorf("rejected = %+v, want %d", rejected, len(want))
	}
	for _, r := range rejected {
		if !strings.Contains(r.Reason, want[r.ID]) || !strings.Contains(r.Reason, prefix+r.ID) {
			t.Errorf("rejected %s: reason %q, want it to name the key and say %q", r.ID, r.Reason, want[r.ID])
		}
		// Only a missing hash, or one that holds markers alone, is
		// Missing (and NotStored): it may yet be stored, and then catch-up
		// must not pass it over.
		stored := r.ID != "missing" && r.ID != "tombstone"
		if r.Missing == stored || r.NotStored == stored {
			t.Errorf("rejected %s: Missing = %v, NotStored = %v", r.ID, r.Missing, r.NotStored)
		}
	}
}

// TestLoaderLimits: out-of-bounds orders are rejected each on its own with
// the limit named, among good ones in the same round trip; an overlong id
// is refused before any HGETALL, so it never travels to Redis (its bytes do
// not show in Redis' input counter) and is not marked either.
func TestLoaderLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	ctx := t.Context()
	rdb := redistest.Start(t).Client()
	const prefix = "purchase_order_details:"
	good := []any{"ts", "1627000000", "qty", "2", "cost", "3.50", "event", "e", "who", "w"}
	rdb.HSet(ctx, prefix+"ok", good...)
	rdb.HSet(ctx, prefix+"ok2", good...)
	rdb.HSet(ctx, prefix+"big-qty", append(good, "qty", "1000001")...)
	rdb.HSet(ctx, prefix+"exp-cost", append(good, "cost", "1e308")...)
	rdb.HSet(ctx, prefix+"bad-utf8", append(good, "who", "w\xff")...)
	rdb.HSet(ctx, prefix+"huge", append(good, "blob", strings.Repeat("x", 70000))...)
	rdb.HSet(ctx, prefix+"w\xff", good...)
	hugeID := strings.Repeat("i", 1<<20)

	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	before := netInput(t, rdb)
	refs := []orders.Ref{{ID: "ok"}, {ID: hugeID}, {ID: "big-qty"}, {ID: "exp-cost"}, {ID: "bad-utf8"}, {ID: "huge"}, {ID: "w\xff"}, {ID: "ok2"}}
	loaded, rejected, err := orders.NewLoader(rdb, prefix).Load(ctx, refs)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(loaded) != 2 || loaded[0].Order.ID != "ok" || loaded[1].Order.ID != "ok2" {
		t.Errorf("loaded = %+v, want orders ok and ok2", loaded)
	}
	want := map[string]string{
		hugeID:     "order id of 1048576 bytes exceeds limits.max_id_bytes = 256",
		"big-qty":  "order hash purchase_order_details:big-qty: field qty = \"1000001\" exceeds limits.max_qty = 1000000",
		"exp-cost": "order hash purchase_order_details:exp-cost: field cost = \"1e308\" is not a non-negative number",
		"bad-utf8": "order hash purchase_order_details:bad-utf8: field \"who\" is not valid UTF-8",
		"huge":     "order hash purchase_order_details:huge: field \"blob\" holds 70000 bytes, over limits.max_field_bytes = 4096",
		"w\xff":    `order id "w\xff" is not valid UTF-8`,
	}
	if len(rejected) != len(want) {
		t.Errorf("%d rejected, want %d", len(rejected), len(want))
	}
	for _, r := range rejected {
		if !strings.HasPrefix(r.Reason, want[r.ID]) || want[r.ID] == "" {
			t.Errorf("rejected %.20q: reason %q, want %q", r.ID, r.Reason, want[r.ID])
		}
		// Only the overlong id is left unmarked: the others have a hash to
		// mark (or may have one), and a short id costs nothing to send.
		if r.Missing != (r.ID == hugeID) {
			t.Errorf("rejected %.20q: Missing = %v", r.ID, r.Missing)
		}
	}
	stats, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stats, "cmdstat_hgetall:calls=6,") {
		t.Errorf("want 6 HGETALLs (not the overlong id, not the invalid one); commandstats:\n%s", stats)
	}
	if sent := netInput(t, rdb) - before; sent > 64<<10 {
		t.Errorf("Redis received %d bytes during Load: the 1 MiB id was sent", sent)
	}
}

// netInput is how many bytes Redis has read from its clients.
func netInput(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(t.Context(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_net_input_bytes:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no total_net_input_bytes in INFO stats")
	return 0
}

// TestLoaderReadsBothProtocols: a batch read raw over RESP3 (maps) and over
// RESP2 (flat arrays) loads and rejects exactly what go-redis' own HGETALL
// does (a cluster client's path, taken here by reading every key through the
// fallback): the same orders, extra fields and done markers, the same reasons.
func TestLoaderReadsBothProtocols(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	ctx := t.Context()
	srv := redistest.Start(t)
	rdb := srv.Client()
	const prefix = "purchase_order_details:"
	good := []any{"ts", "1627000000", "qty", "2", "cost", "3.50", "event", "e", "who", "w"}
	rdb.HSet(ctx, prefix+"ok", good...)
	// Done for p by its own field, and for r and s by a list of them.
	rdb.HSet(ctx, prefix+"extra", append(good, "seat", "A12", "note", "", keyspace.DoneField("p"), "1", keyspace.DeadField("q"), "x",
		keyspace.DoneListField, "1700000000000 r s")...)
	rdb.HSet(ctx, prefix+"empty-who", append(good, "who", "")...)
	rdb.HSet(ctx, prefix+"big", append(good, "blob", strings.Repeat("é", 3000))...)
	rdb.Set(ctx, prefix+"a-string", "x", 0)
	rdb.HSet(ctx, prefix+"tombstone", keyspace.DoneField("p"), "1")
	var refs []orders.Ref
	for _, id := range []string{"ok", "extra", "missing", "a-string", "empty-who", "big", "tombstone", "", "ok"} {
		refs = append(refs, orders.Ref{ID: id, Channel: "c"})
	}

	load := func(c redis.UniversalClient) ([]orders.Loaded, []orders.Rejected) {
		t.Helper()
		loaded, rejected, err := orders.NewLoader(c, prefix).Load(ctx, refs)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		return loaded, rejected
	}
	resp3Loaded, resp3Rejected := load(rdb)
	resp2 := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2})
	defer resp2.Close()
	resp2Loaded, resp2Rejected := load(resp2)
	// A Ring is no *redis.Client: its loader reads every key the way a
	// cluster's does, with go-redis' HGETALL.
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"one": srv.Addr}})
	defer ring.Close()
	mapLoaded, mapRejected := load(ring)

	if len(resp3Loaded) != 3 || len(resp3Rejected) != 6 {
		t.Fatalf("RESP3: loaded %+v, rejected %+v; want 3 and 6", resp3Loaded, resp3Rejected)
	}
	if e := resp3Loaded[1]; e.Order.Extra["seat"] != "A12" || e.Order.Extra["note"] != "" || len(e.Order.Extra) != 2 ||
		!reflect.DeepEqual(e.Done, map[string]bool{"p": true, "r": true, "s": true}) {
		t.Errorf("order extra: %+v, done %v; want seat and note, done for p, r and s", e.Order, e.Done)
	}
	for name, got := range map[string][2]any{"RESP2": {resp2Loaded, resp2Rejected}, "go-redis HGETALL": {mapLoaded, mapRejected}} {
		if !reflect.DeepEqual(got[0], resp3Loaded) {
			t.Errorf("%s loaded %+v, RESP3 %+v", name, got[0], resp3Loaded)
		}
		if !reflect.DeepEqual(got[1], resp3Rejected) {
			t.Errorf("%s rejected %+v, RESP3 %+v", name, got[1], resp3Rejected)
		}
	}
}
