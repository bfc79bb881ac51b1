package apply_test

import (
	"context"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/orders"
)

// seen loads ids as the pipeline does and returns the horizon the loader
// read first: the last apply before the hashes were read.
func seen(t *testing.T, ctx context.Context, rdb *redis.Client, ids ...string) orders.Horizon {
	t.Helper()
	refs := make([]orders.Ref, len(ids))
	for i, id := range ids {
		refs[i] = orders.Ref{ID: id, Channel: "purchase_orders"}
	}
	loaded, rejected, err := orders.NewLoader(rdb, "purchase_order_details:").Load(ctx, refs)
	if err != nil || len(rejected) > 0 || len(loaded) != len(ids) {
		t.Fatalf("load %v: %v, rejected %v", ids, err, rejected)
	}
	if !loaded[0].Seen.Known {
		t.Fatal("the loader did not read the applies' count")
	}
	return loaded[0].Seen
}

// counted is one write per id for plugin "invoices": each adds the id to
// the set "counted", so a set member counted twice would not show, but
// an HINCRBY of "times" per id does.
func counted(h orders.Horizon, ids ...string) []apply.Write {
	var ws []apply.Write
	for _, id := range ids {
		w := write(id, "invoices", eff("SADD", "counted", id), eff("HINCRBY", "times", id, "1"))
		w.Seen = h
		ws = append(ws, w)
	}
	return ws
}

// hmgets applies b and returns its statuses and how many HMGETs the
// script ran: one per order whose markers it read.
func hmgets(t *testing.T, ctx context.Context, rdb *redis.Client, a *apply.Applier, b apply.Batch) ([]apply.Status, int) {
	t.Helper()
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := a.Apply(ctx, b)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res.Statuses, commandCalls(t, ctx, rdb)["hmget"]
}

// ring returns the applies' count and every ring set that is not empty,
// members sorted.
func ring(t *testing.T, ctx context.Context, rdb *redis.Client) (map[string]string, map[string][]string) {
	t.Helper()
	sets := map[string][]string{}
	for n := range keyspace.AppliesRing {
		m := rdb.SMembers(ctx, keyspace.AppliesSlot(n)).Val()
		if len(m) > 0 {
			sort.Strings(m)
			sets[keyspace.AppliesSlot(n)] = m
		}
	}
	return rdb.HGetAll(ctx, keyspace.AppliesKey).Val(), sets
}

// TestApplyNumbersItsRuns: every run that marks orders numbers itself in
// the applies' hash and keeps its token and the orders it marked in the
// ring; a load reads that count before the hashes.
func TestApplyNumbersItsRuns(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	for _, id := range []string{"1", "2", "3"} {
		createOrder(t, ctx, rdb, id)
	}
	if h := seen(t, ctx, rdb, "1"); h != (orders.Horizon{Known: true}) {
		t.Fatalf("horizon before any apply = %+v, want seq 0", h)
	}
	if _, err := a.Apply(ctx, apply.Batch{Writes: counted(orders.Horizon{}, "1", "2")}); err != nil {
		t.Fatal(err)
	}
	count, sets := ring(t, ctx, rdb)
	first := count["token"]
	if count["seq"] != "1" || first == "" || len(count) != 2 {
		t.Fatalf("applies after one run = %v, want seq 1 and a token", count)
	}
	want := map[string][]string{keyspace.AppliesSlot(1): {"#" + first, orderKey("1"), orderKey("2")}}
	if !reflect.DeepEqual(sets, want) {
		t.Fatalf("ring after one run = %v, want %v", sets, want)
	}
	if h := seen(t, ctx, rdb, "3"); h != (orders.Horizon{Seq: 1, Token: first, Known: true}) {
		t.Fatalf("horizon after one run = %+v, want seq 1 and %q", h, first)
	}
	// A run that marks nothing (every write done already, by run 1, after
	// this batch's load) is not counted.
	if _, err := a.Apply(ctx, apply.Batch{Writes: counted(orders.Horizon{Known: true}, "1")}); err != nil {
		t.Fatal(err)
	}
	if c, _ := ring(t, ctx, rdb); c["seq"] != "1" {
		t.Fatalf("a run that marked nothing was counted: %v", c)
	}
	// Run 1+AppliesRing reuses run 1's set, emptied first.
	if err := rdb.HSet(ctx, keyspace.AppliesKey, "seq", keyspace.AppliesRing).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, apply.Batch{Writes: counted(orders.Horizon{}, "3")}); err != nil {
		t.Fatal(err)
	}
	count, sets = ring(t, ctx, rdb)
	want = map[string][]string{keyspace.AppliesSlot(1): {"#" + count["token"], orderKey("3")}}
	if count["seq"] != strconv.Itoa(keyspace.AppliesRing+1) || count["token"] == first || !reflect.DeepEqual(sets, want) {
		t.Fatalf("after run %d: applies %v, ring %v; want ring %v", keyspace.AppliesRing+1, count, sets, want)
	}
}

// TestApplyReadsOnlyOrdersMarkedSinceTheLoad is the lean check: a batch
// whose load saw run N reads the markers of the orders runs after N
// marked, and no others; when it cannot tell, it reads them all.
func TestApplyReadsOnlyOrdersMarkedSinceTheLoad(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	for i := 0; i <= 7; i++ {
		createOrder(t, ctx, rdb, strconv.Itoa(i))
	}
	// A load that saw no run has no token to check the history by (see
	// TestLeanCheckAppliesDeletedAfterALoadThatSawNone): run 1 first.
	if _, err := a.Apply(ctx, apply.Batch{Writes: counted(orders.Horizon{}, "0")}); err != nil {
		t.Fatal(err)
	}
	// Two hosts load orders 2 and 3 at the same time; the first applies
	// 1 and 2 before the second applies 2 and 3.
	before := seen(t, ctx, rdb, "1", "2", "3")
	statuses, reads := hmgets(t, ctx, rdb, a, apply.Batch{Writes: counted(before, "1", "2")})
	if want := []apply.Status{apply.Applied, apply.Applied}; !reflect.DeepEqual(statuses, want) || reads != 0 {
		t.Fatalf("first batch: statuses %v, %d orders read; want both applied, none read (nothing ran since the load)", statuses, reads)
	}
	statuses, reads = hmgets(t, ctx, rdb, a, apply.Batch{Writes: counted(before, "2", "3")})
	if want := []apply.Status{apply.AlreadyDone, apply.Applied}; !reflect.DeepEqual(statuses, want) || reads != 1 {
		t.Fatalf("second batch: statuses %v, %d orders read; want 2 done, 3 applied, one read (2, which run 1 marked)", statuses, reads)
	}
	if got, want := rdb.HGetAll(ctx, "times").Val(), map[string]string{"0": "1", "1": "1", "2": "1", "3": "1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("times = %v, want each order counted once: %v", got, want)
	}

	next := 4 // each case applies an order of its own
	for _, tc := range []struct {
		name string
		h    func() orders.Horizon
	}{
		{"no horizon", func() orders.Horizon { return orders.Horizon{} }},
		{"another history: run since holds another token (a failover lost it)", func() orders.Horizon {
			h := seen(t, ctx, rdb, "4")
			h.Token = "lost.1"
			return h
		}},
		{"the ring no longer holds every run since", func() orders.Horizon {
			h := seen(t, ctx, rdb, "4")
			if err := rdb.HIncrBy(ctx, keyspace.AppliesKey, "seq", keyspace.AppliesRing).Err(); err != nil {
				t.Fatal(err)
			}
			return h
		}},
		{"a count past Redis' (Redis lost runs, or was emptied)", func() orders.Horizon {
			h := seen(t, ctx, rdb, "4")
			h.Seq += 1000
			return h
		}},
	} {
		h := tc.h()
		id := strconv.Itoa(next)
		next++
		statuses, reads := hmgets(t, ctx, rdb, a, apply.Batch{Writes: counted(h, id)})
		if statuses[0] != apply.Applied || reads != 1 {
			t.Fatalf("%s: status %v, %d orders read; want applied after reading its markers", tc.name, statuses[0], reads)
		}
	}
	if got := rdb.HLen(ctx, "times").Val(); got != 8 {
		t.Fatalf("%d orders counted, want 8", got)
	}
	// An order marked without a run (an older host, a hand edit) is not
	// in the ring: the load must have seen it, and the dispatcher left it
	// out. What the script alone guarantees is that writes whose horizon
	// differ fall back to reading every order.
	mixed := append(counted(seen(t, ctx, rdb, "1"), "1"), counted(orders.Horizon{Seq: 1, Token: "x", Known: true}, "2")...)
	statuses, reads = hmgets(t, ctx, rdb, a, apply.Batch{Writes: mixed})
	if want := []apply.Status{apply.AlreadyDone, apply.AlreadyDone}; !reflect.DeepEqual(statuses, want) || reads != 2 {
		t.Fatalf("writes of two horizons: statuses %v, %d read; want both done, both read", statuses, reads)
	}
}

// TestApplyLeanCheckFindsVanishedOrders: an order hash deleted, or
// replaced by another type, after the load is found although its markers
// are not read: the write is Vanished, the rest lands, nothing is created
// or left half marked.
func TestApplyLeanCheckFindsVanishedOrders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(ctx context.Context, rdb *redis.Client) error
		want   map[string]string // what becomes of order 2's key
		// reads is how many order hashes the script reads: every one when
		// EXISTS finds one missing, none when the HSET finds it.
		reads int
	}{
		{"deleted", func(ctx context.Context, rdb *redis.Client) error { return rdb.Del(ctx, orderKey("2")).Err() }, nil, 3},
		{"replaced by a string", func(ctx context.Context, rdb *redis.Client) error {
			if err := rdb.Del(ctx, orderKey("2")).Err(); err != nil {
				return err
			}
			return rdb.Set(ctx, orderKey("2"), "not an order", 0).Err()
		}, map[string]string{"string": "not an order"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, rdb, a := setup(t, 0)
			for _, id := range []string{"0", "1", "2", "3"} {
				createOrder(t, ctx, rdb, id)
			}
			// Run 1, so that the load sees a run and the lean check is used.
			if _, err := a.Apply(ctx, apply.Batch{Writes: []apply.Write{write("0", "invoices", eff("SADD", "first", "0"))}}); err != nil {
				t.Fatal(err)
			}
			first := rdb.HGet(ctx, keyspace.AppliesKey, "token").Val()
			h := seen(t, ctx, rdb, "1", "2", "3")
			if err := tc.change(ctx, rdb); err != nil {
				t.Fatal(err)
			}
			if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			res, err := a.Apply(ctx, apply.Batch{Writes: counted(h, "1", "2", "3")})
			if err != nil {
				t.Fatal(err)
			}
			if reads := commandCalls(t, ctx, rdb)["hmget"]; reads != tc.reads {
				t.Errorf("%d order hashes read, want %d", reads, tc.reads)
			}
			if want := []apply.Status{apply.Applied, apply.Vanished, apply.Applied}; !reflect.DeepEqual(res.Statuses, want) {
				t.Fatalf("statuses %v, want %v (reasons %v)", res.Statuses, want, res.Reasons)
			}
			if got, want := rdb.HGetAll(ctx, "times").Val(), map[string]string{"1": "1", "3": "1"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("times = %v, want %v", got, want)
			}
			for _, id := range []string{"1", "3"} {
				if n := rdb.HLen(ctx, orderKey(id)).Val(); n != 6 {
					t.Errorf("order %s has %d fields, want its 5 and one marker", id, n)
				}
			}
			got := map[string]string{}
			if typ := rdb.Type(ctx, orderKey("2")).Val(); typ == "string" {
				got["string"] = rdb.Get(ctx, orderKey("2")).Val()
			} else if typ != "none" {
				got[typ] = "?"
			}
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("order 2's key: %v, want %v", got, tc.want)
			}
			count, sets := ring(t, ctx, rdb)
			want := map[string][]string{
				keyspace.AppliesSlot(1): {"#" + first, orderKey("0")},
				keyspace.AppliesSlot(2): {"#" + count["token"], orderKey("1"), orderKey("3")},
			}
			if !reflect.DeepEqual(sets, want) {
				t.Fatalf("ring %v, want %v: one run, of the orders it marked", sets, want)
			}
		})
	}
}

// TestApplyRingPermissions: numbering a run is required, so a user who
// may not HSET the count gets a NOPERM with nothing written; one who may
// not fill the ring (DEL, SADD: an ACL from before it) numbers the run
// past the ring, so that every batch reads every order; reading less is
// optional, so a user without SMISMEMBER gets every order read.
func TestApplyRingPermissions(t *testing.T) {
	for _, tc := range []struct {
		deny  string
		err   string // "" for no error
		reads int    // HMGETs when there is no error
		seq   string // the count after the run: "" for 2
		next  int    // HMGETs of the next batch, of one order
	}{
		{deny: "-hset", err: "NOPERM this user may not run HSET on purchase_order_details:1"},
		{deny: "-hget", err: "NOPERM cannot read eventhost:applies to number the run"},
		{deny: "-del", reads: 0, seq: strconv.Itoa(1 + keyspace.AppliesRing), next: 1},
		{deny: "-get", reads: 0, next: 0}, // the lean check, for comparison
		{deny: "-smismember", reads: 2, next: 1},
		{deny: "-hdel", reads: 2, next: 1},
		{deny: "-exists", reads: 2, next: 1},
	} {
		t.Run(tc.deny, func(t *testing.T) {
			t.Parallel()
			ctx, admin, _ := setup(t, 0)
			if err := admin.Do(ctx, "ACL", "SETUSER", "eh", "on", ">pw", "~*", "&*", "+@all", tc.deny).Err(); err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(&redis.Options{Addr: admin.Options().Addr, Username: "eh", Password: "pw"})
			t.Cleanup(func() { rdb.Close() })
			a := apply.New(rdb, dlStream)
			for _, id := range []string{"0", "1", "2"} {
				createOrder(t, ctx, admin, id)
			}
			// Run 1, so that the load sees a run and the lean check may
			// be used (a load that saw none reads every order anyway).
			first := apply.New(admin, dlStream)
			if _, err := first.Apply(ctx, apply.Batch{Writes: []apply.Write{write("0", "invoices", eff("SADD", "first", "0"))}}); err != nil {
				t.Fatal(err)
			}
			b := apply.Batch{Writes: counted(seen(t, ctx, admin, "1", "2"), "1", "2")}
			if tc.err != "" {
				_, err := a.Apply(ctx, b)
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Apply: %v, want %q", err, tc.err)
				}
				if n := admin.Exists(ctx, "times", "counted", keyspace.AppliesSlot(2)).Val(); n != 0 {
					t.Fatalf("%d keys written by a refused batch", n)
				}
				if count, _ := ring(t, ctx, admin); count["seq"] != "1" {
					t.Fatalf("a refused batch was numbered: %v", count)
				}
				return
			}
			statuses, reads := hmgets(t, ctx, admin, a, b)
			if want := []apply.Status{apply.Applied, apply.Applied}; !reflect.DeepEqual(statuses, want) || reads != tc.reads {
				t.Fatalf("statuses %v, %d orders read; want both applied, %d read", statuses, reads, tc.reads)
			}
			want := tc.seq
			if want == "" {
				want = "2"
			}
			if count, _ := ring(t, ctx, admin); count["seq"] != want {
				t.Fatalf("run numbered %v, want seq %s", count, want)
			}
			// The next batch, loaded after this run, reads every order
			// too when this run could not fill the ring.
			createOrder(t, ctx, admin, "3")
			_, reads = hmgets(t, ctx, admin, a, apply.Batch{Writes: counted(seen(t, ctx, admin, "3"), "3")})
			if reads != tc.next {
				t.Fatalf("the next batch read %d orders, want %d", reads, tc.next)
			}
		})
	}
}
