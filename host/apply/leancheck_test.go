package apply_test

import (
	"context"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/keyspace"
)

// The lean check (apply.lua, 2.): a batch reads no order's markers when the
// HSETNX of each order's list writes, since every run that marks an order
// leaves a list in it. Each test is one way an order could be counted
// twice, or a batch wedged, that reading every order's markers would have
// handled. Host A loads, host B (another Applier on the same Redis) applies
// in between, then A applies what it loaded.

// counted is one write per id for plugin "invoices": each adds the id to
// the set "counted", so a set member counted twice would not show, but
// an HINCRBY of "times" per id does.
func counted(ids ...string) []apply.Write {
	var ws []apply.Write
	for _, id := range ids {
		ws = append(ws, write(id, "invoices", eff("SADD", "counted", id), eff("HINCRBY", "times", id, "1")))
	}
	return ws
}

// readingAll returns an Applier on rdb that reads every order's markers,
// as where the lean check cannot be used.
func readingAll(t testing.TB, rdb redis.UniversalClient) *apply.Applier {
	t.Helper()
	a := apply.New(rdb, dlStream)
	if err := apply.CutScript(a, map[string]string{"local lean = norders > 0 and": "local lean = false and"}); err != nil {
		t.Fatal(err)
	}
	return a
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

// applyTimes applies b with a and returns the statuses; it fails the test
// on an error.
func applyTimes(t *testing.T, ctx context.Context, a *apply.Applier, b apply.Batch) []apply.Status {
	t.Helper()
	res, err := a.Apply(ctx, b)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res.Statuses
}

// wantCountedOnce fails unless every id was counted exactly once.
func wantCountedOnce(t *testing.T, ctx context.Context, rdb *redis.Client, ids ...string) {
	t.Helper()
	want := map[string]string{}
	for _, id := range ids {
		want[id] = "1"
	}
	if got := rdb.HGetAll(ctx, "times").Val(); !reflect.DeepEqual(got, want) {
		t.Fatalf("times = %v, want each order counted once: %v", got, want)
	}
}

// TestLeanCheckReadsOnlyWhatARunSinceMarked: two hosts load orders 2 and 3
// at the same time; the first applies 1 and 2 before the second applies 2
// and 3. The first reads nothing; the second finds 2 marked when its list
// will not go in, reads every order once to leave out all that is done,
// and applies 3 without reading again. No key but the orders' and the
// effects' is written: runs are not numbered.
func TestLeanCheckReadsOnlyWhatARunSinceMarked(t *testing.T) {
	ctx, rdb, hostA := setup(t, 0)
	hostB := apply.New(rdb, dlStream)
	for _, id := range []string{"1", "2", "3"} {
		createOrder(t, ctx, rdb, id)
	}
	statuses, reads := hmgets(t, ctx, rdb, hostB, apply.Batch{Writes: counted("1", "2")})
	if want := []apply.Status{apply.Applied, apply.Applied}; !reflect.DeepEqual(statuses, want) || reads != 0 {
		t.Fatalf("first batch: statuses %v, %d orders read; want both applied, none read", statuses, reads)
	}
	before := time.Now().UnixMicro()
	statuses, reads = hmgets(t, ctx, rdb, hostA, apply.Batch{Writes: counted("2", "3")})
	after := time.Now().UnixMicro()
	if want := []apply.Status{apply.AlreadyDone, apply.Applied}; !reflect.DeepEqual(statuses, want) || reads != 3 {
		t.Fatalf("second batch: statuses %v, %d orders read; want 2 done, 3 applied, 3 reads (2, then 2 and 3; none after)", statuses, reads)
	}
	wantCountedOnce(t, ctx, rdb, "1", "2", "3")
	wantDoneList(t, ctx, rdb, orderKey("3"), before, after, "invoices")
	if got, want := markersOf(t, ctx, rdb, orderKey("2")), map[string]string{keyspace.DoneListField: "T invoices"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order 2's markers %v, want %v (host B's list alone)", got, want)
	}
	keys := rdb.Keys(ctx, "*").Val()
	slices.Sort(keys)
	if want := []string{"counted", orderKey("1"), orderKey("2"), orderKey("3"), "times"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
}

// TestLeanCheckFindsVanishedOrders: an order hash deleted, or replaced by
// another type, after the load is found although its markers are not read:
// the write is Vanished, the rest lands, nothing is created or left half
// marked.
func TestLeanCheckFindsVanishedOrders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(ctx context.Context, rdb *redis.Client) error
		want   map[string]string // what becomes of order 2's key
		// reads is how many order hashes the script reads: every one when
		// EXISTS finds one missing; every one too when order 2's HSETNX
		// finds a string (the list of order 1 is taken back first), and
		// then none: the batch is applied again without 2.
		reads int
	}{
		{"deleted", func(ctx context.Context, rdb *redis.Client) error { return rdb.Del(ctx, orderKey("2")).Err() }, nil, 3},
		{"replaced by a string", func(ctx context.Context, rdb *redis.Client) error {
			if err := rdb.Del(ctx, orderKey("2")).Err(); err != nil {
				return err
			}
			return rdb.Set(ctx, orderKey("2"), "not an order", 0).Err()
		}, map[string]string{"string": "not an order"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, rdb, a := setup(t, 0)
			for _, id := range []string{"1", "2", "3"} {
				createOrder(t, ctx, rdb, id)
			}
			if err := tc.change(ctx, rdb); err != nil {
				t.Fatal(err)
			}
			if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			res, err := a.Apply(ctx, apply.Batch{Writes: counted("1", "2", "3")})
			if err != nil {
				t.Fatal(err)
			}
			if reads := commandCalls(t, ctx, rdb)["hmget"]; reads != tc.reads {
				t.Errorf("%d order hashes read, want %d", reads, tc.reads)
			}
			if want := []apply.Status{apply.Applied, apply.Vanished, apply.Applied}; !reflect.DeepEqual(res.Statuses, want) {
				t.Fatalf("statuses %v, want %v (reasons %v)", res.Statuses, want, res.Reasons)
			}
			wantCountedOnce(t, ctx, rdb, "1", "3")
			for _, id := range []string{"1", "3"} {
				if got, want := markersOf(t, ctx, rdb, orderKey(id)), map[string]string{keyspace.DoneListField: "T invoices"}; !reflect.DeepEqual(got, want) {
					t.Errorf("order %s's markers %v, want %v", id, got, want)
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
		})
	}
}

// TestLeanCheckPermissions: marking orders needs HSET, and reading them
// HMGET: a user without either gets a NOPERM naming it, with nothing
// written. Reading less is optional: a user without HSETNX, HDEL or EXISTS
// gets every order read (and their lists written with HSET).
func TestLeanCheckPermissions(t *testing.T) {
	for _, tc := range []struct {
		deny  string
		err   string // "" for no error
		reads int    // HMGETs when there is no error
	}{
		{deny: "-hset", err: "NOPERM this user may not run HSET on purchase_order_details:1"},
		{deny: "-hmget", err: "NOPERM this user may not run HMGET on purchase_order_details:1"},
		{deny: "-get", reads: 0}, // the lean check, for comparison
		{deny: "-hsetnx", reads: 2},
		{deny: "-hdel", reads: 2},
		{deny: "-exists", reads: 2},
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
			for _, id := range []string{"1", "2"} {
				createOrder(t, ctx, admin, id)
			}
			b := apply.Batch{Writes: counted("1", "2")}
			if tc.err != "" {
				_, err := a.Apply(ctx, b)
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Apply: %v, want %q", err, tc.err)
				}
				if n := admin.Exists(ctx, "times", "counted").Val(); n != 0 {
					t.Fatalf("%d keys written by a refused batch", n)
				}
				for _, id := range []string{"1", "2"} {
					if got := markersOf(t, ctx, admin, orderKey(id)); len(got) != 0 {
						t.Fatalf("order %s marked by a refused batch: %v", id, got)
					}
				}
				return
			}
			statuses, reads := hmgets(t, ctx, admin, a, b)
			if want := []apply.Status{apply.Applied, apply.Applied}; !reflect.DeepEqual(statuses, want) || reads != tc.reads {
				t.Fatalf("statuses %v, %d orders read; want both applied, %d read", statuses, reads, tc.reads)
			}
			wantCountedOnce(t, ctx, admin, "1", "2")
			for _, id := range []string{"1", "2"} {
				if got, want := markersOf(t, ctx, admin, orderKey(id)), map[string]string{keyspace.DoneListField: "T invoices"}; !reflect.DeepEqual(got, want) {
					t.Errorf("order %s's markers %v, want %v", id, got, want)
				}
			}
		})
	}
}

// TestLeanCheckRetryAfterLostReply: a batch applied whose reply was lost is
// applied again; each part's first list finds its own, and the part's
// orders are read once and left out together: three reads a part, every
// order found done, none counted twice.
func TestLeanCheckRetryAfterLostReply(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	ids := []string{"1", "2", "3", "4", "5", "6"}
	for _, id := range ids {
		createOrder(t, ctx, rdb, id)
	}
	a.MaxArgs = 25 // two orders a part (12 arguments each): three runs
	b := apply.Batch{Writes: counted(ids...)}
	for _, s := range applyTimes(t, ctx, a, b) {
		if s != apply.Applied {
			t.Fatalf("first apply: %v", s)
		}
	}
	statuses, reads := hmgets(t, ctx, rdb, a, b)
	for i, s := range statuses {
		if s != apply.AlreadyDone {
			t.Fatalf("retry: write %d %v, want AlreadyDone", i, s)
		}
	}
	if reads != 9 {
		t.Fatalf("retry read %d orders, want 9 (three a part)", reads)
	}
	wantCountedOnce(t, ctx, rdb, ids...)
}

// TestLeanCheckMarksAfterTheLoad: an order marked after the load, by a run
// of another host or by a write no run made (an order hash restored by
// hand), is found done: a list naming the plugin, or a field each for
// plugins whose names make no list (the batch reads those orders). A run
// that marks with a field each leaves a list naming no plugin, so a batch
// writing a list finds those fields too.
func TestLeanCheckMarksAfterTheLoad(t *testing.T) {
	long := strings.Repeat("l", keyspace.DoneListMax) // a name no list holds
	for _, tt := range []struct {
		name              string
		invoices, summary string
		mark              func(ctx context.Context, rdb *redis.Client) error
		markers           map[string]string // order 1's, from markersOf
	}{
		{name: "a list by hand", invoices: "invoices", summary: "summary",
			mark: func(ctx context.Context, rdb *redis.Client) error {
				return handMark(ctx, rdb, keyspace.DoneListField, "1700000000000 invoices summary")
			},
			markers: map[string]string{keyspace.DoneListField: "T invoices summary"}},
		{name: "a field each by hand", invoices: long + "i", summary: long + "s",
			mark: func(ctx context.Context, rdb *redis.Client) error {
				return handMark(ctx, rdb, keyspace.DoneField(long+"i"), "1700000000000000", keyspace.DoneField(long+"s"), "1700000000000000")
			},
			markers: map[string]string{keyspace.DoneField(long + "i"): "µs", keyspace.DoneField(long + "s"): "µs"}},
		{name: "a field each by a run", invoices: "invoices", summary: "summary",
			mark: func(ctx context.Context, rdb *redis.Client) error {
				// With a plugin whose name makes no list, the run marks
				// order 1 with a field each.
				w := []apply.Write{write("1", "invoices", eff("SADD", "counted", "1"), eff("HINCRBY", "times", "1", "1")),
					write("1", "summary", eff("HINCRBY", "summary", "1", "1")), write("1", long, eff("SADD", "by-long", "1"))}
				_, err := apply.New(rdb, dlStream).Apply(ctx, apply.Batch{Writes: w})
				return err
			},
			markers: map[string]string{keyspace.DoneListField: "T ", keyspace.DoneField("invoices"): "µs",
				keyspace.DoneField("summary"): "µs", keyspace.DoneField(long): "µs"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, rdb, hostA := setup(t, 0)
			for _, id := range []string{"1", "2"} {
				createOrder(t, ctx, rdb, id)
			}
			// Host A has loaded orders 1 and 2: nothing marked yet.
			if err := tt.mark(ctx, rdb); err != nil {
				t.Fatal(err)
			}
			writes := []apply.Write{
				write("1", tt.invoices, eff("SADD", "counted", "1"), eff("HINCRBY", "times", "1", "1")),
				write("1", tt.summary, eff("HINCRBY", "summary", "1", "1")),
				write("2", tt.invoices, eff("SADD", "counted", "2"), eff("HINCRBY", "times", "2", "1")),
			}
			statuses := applyTimes(t, ctx, hostA, apply.Batch{Writes: writes})
			if want := []apply.Status{apply.AlreadyDone, apply.AlreadyDone, apply.Applied}; !reflect.DeepEqual(statuses, want) {
				t.Errorf("statuses %v, want %v", statuses, want)
			}
			wantCountedOnce(t, ctx, rdb, "1", "2")
			if got := rdb.HGetAll(ctx, "summary").Val(); !reflect.DeepEqual(got, map[string]string{"1": "1"}) {
				t.Errorf("summary = %v, want order 1 counted once", got)
			}
			if got := markersOf(t, ctx, rdb, orderKey("1")); !reflect.DeepEqual(got, tt.markers) {
				t.Errorf("order 1's markers %v, want %v (as the mark left them)", got, tt.markers)
			}
		})
	}
}

// handMark writes order 1's effects and the markers given, in one step,
// and no run: as a restore by hand would.
func handMark(ctx context.Context, rdb *redis.Client, marks ...any) error {
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, orderKey("1"), marks...)
		p.SAdd(ctx, "counted", "1")
		p.HIncrBy(ctx, "times", "1", 1)
		p.HIncrBy(ctx, "summary", "1", 1)
		return nil
	})
	return err
}

// TestLeanCheckReplicaMissingTheLastRuns plays a failover to a replica that
// lacks the runs after the load: Redis is put back to what it held before
// (DUMP/RESTORE of every key), then another run marks another order. Order
// 1, marked by the lost run, is counted once; order 2 is found done.
func TestLeanCheckReplicaMissingTheLastRuns(t *testing.T) {
	ctx, rdb, hostA := setup(t, 0)
	hostB := apply.New(rdb, dlStream)
	for _, id := range []string{"0", "1", "2"} {
		createOrder(t, ctx, rdb, id)
	}
	applyTimes(t, ctx, hostB, apply.Batch{Writes: counted("0")})
	snap := snapshot(t, ctx, rdb)
	applyTimes(t, ctx, hostB, apply.Batch{Writes: counted("1")}) // lost
	restore(t, ctx, rdb, snap)
	applyTimes(t, ctx, hostB, apply.Batch{Writes: counted("2")})
	statuses := applyTimes(t, ctx, hostA, apply.Batch{Writes: counted("1", "2")})
	if want := []apply.Status{apply.Applied, apply.AlreadyDone}; !reflect.DeepEqual(statuses, want) {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
	wantCountedOnce(t, ctx, rdb, "0", "1", "2")
}

// snapshot DUMPs every key.
func snapshot(t *testing.T, ctx context.Context, rdb *redis.Client) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range rdb.Keys(ctx, "*").Val() {
		v, err := rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

// restore empties Redis and RESTOREs snap.
func restore(t *testing.T, ctx context.Context, rdb *redis.Client, snap map[string]string) {
	t.Helper()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for k, v := range snap {
		if err := rdb.Restore(ctx, k, 0, v).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLeanCheckAfterFlush: Redis emptied (FLUSHDB, or a restart without
// persistence) after the load; the producer stores the orders again and
// another host counts one. It is found done, the other counted, each once.
func TestLeanCheckAfterFlush(t *testing.T) {
	ctx, rdb, hostA := setup(t, 0)
	hostB := apply.New(rdb, dlStream)
	createOrder(t, ctx, rdb, "1")
	createOrder(t, ctx, rdb, "2")
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	createOrder(t, ctx, rdb, "1")
	createOrder(t, ctx, rdb, "2")
	applyTimes(t, ctx, hostB, apply.Batch{Writes: counted("1")})
	statuses := applyTimes(t, ctx, hostA, apply.Batch{Writes: counted("1", "2")})
	if want := []apply.Status{apply.AlreadyDone, apply.Applied}; !reflect.DeepEqual(statuses, want) {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
	wantCountedOnce(t, ctx, rdb, "1", "2")
}

// TestLeanCheckAcrossChunks: the script checks KEYS 1000 at a time
// (EXISTS); orders another host marked on either side of a chunk's edge are
// found done, all of them in one read of every order.
func TestLeanCheckAcrossChunks(t *testing.T) {
	ctx, rdb, hostA := setup(t, 0)
	hostB := apply.New(rdb, dlStream)
	const n = 2500
	ids := make([]string, n)
	pipe := rdb.Pipeline()
	for i := range ids {
		ids[i] = "c" + strconv.Itoa(i+1)
		pipe.HSet(ctx, orderKey(ids[i]), "ts", "1700000000", "qty", "3", "cost", "12.5", "event", "rock", "who", "ann")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// Positions in A's batch (1-based): chunk edges at 1000 and 2000.
	done := []int{999, 1000, 1001, 2000, 2001, 2500}
	var byB []string
	for _, p := range done {
		byB = append(byB, ids[p-1])
	}
	applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(byB...)})
	statuses, reads := hmgets(t, ctx, rdb, hostA, apply.Batch{Writes: counted(ids...)})
	want := make([]apply.Status, n)
	for i := range want {
		want[i] = apply.Applied
	}
	for _, p := range done {
		want[p-1] = apply.AlreadyDone
	}
	if !reflect.DeepEqual(statuses, want) {
		for i := range want {
			if statuses[i] != want[i] {
				t.Errorf("order %d: %v, want %v", i+1, statuses[i], want[i])
			}
		}
	}
	if reads != n+1 {
		t.Errorf("%d orders read, want %d: the first found marked, then every one once", reads, n+1)
	}
	wantCountedOnce(t, ctx, rdb, ids...)
}
