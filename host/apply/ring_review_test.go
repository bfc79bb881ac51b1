package apply_test

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/orders"
)

// Review of the lean check (adversarial): each test is one way an order
// could be counted twice, or a batch wedged, that reading every order's
// markers would have handled. Host A loads, host B (another Applier on the
// same Redis) applies in between, then A applies what it loaded.

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

// TestLeanCheckRingSetOfARunSinceDeleted: a ring set of a run after the
// load goes missing (an operator deleting eventhost:applies:* key by key,
// as `redis-cli --scan --pattern 'eventhost:applies*' | xargs redis-cli
// del` does, while hosts run; or a hand DEL of one set). The script checks
// only that run since's set holds its token: the runs after it are read
// from sets it does not know are there, and SMISMEMBER on a missing set
// finds nothing.
func TestLeanCheckRingSetOfARunSinceDeleted(t *testing.T) {
	ctx, rdb, hostA := setup(t, 0)
	hostB := apply.New(rdb, dlStream)
	for _, id := range []string{"0", "1"} {
		createOrder(t, ctx, rdb, id)
	}
	applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, "0")}) // run 1
	h := seen(t, ctx, rdb, "1")                                                    // A loads order 1 after run 1
	if h.Seq != 1 {
		t.Fatalf("horizon %+v, want run 1", h)
	}
	applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, "1")}) // run 2 marks 1
	if err := rdb.Del(ctx, keyspace.AppliesSlot(2)).Err(); err != nil {
		t.Fatal(err)
	}
	statuses := applyTimes(t, ctx, hostA, apply.Batch{Writes: counted(h, "1")})
	if statuses[0] != apply.AlreadyDone {
		t.Errorf("host A's write of order 1: %v, want AlreadyDone (host B applied it after A's load)", statuses[0])
	}
	wantCountedOnce(t, ctx, rdb, "0", "1")
}

// TestLeanCheckAppliesDeletedAfterALoadThatSawNone: a load that saw no
// applies' count (since 0) is taken as knowing every run since, with no
// token to check. Should the count be deleted after a run that marked the
// load's order (an operator deleting eventhost:applies*, all at once or
// the hash alone), the next run is number 1 again and empties the set
// that named the order.
func TestLeanCheckAppliesDeletedAfterALoadThatSawNone(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys func() []string
	}{
		{"the count and its ring", func() []string {
			keys := []string{keyspace.AppliesKey}
			for n := range keyspace.AppliesRing {
				keys = append(keys, keyspace.AppliesSlot(n))
			}
			return keys
		}},
		{"the count alone", func() []string { return []string{keyspace.AppliesKey} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, rdb, hostA := setup(t, 0)
			hostB := apply.New(rdb, dlStream)
			for _, id := range []string{"1", "2"} {
				createOrder(t, ctx, rdb, id)
			}
			h := seen(t, ctx, rdb, "1")                                                    // no run yet
			applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, "1")}) // run 1 marks 1
			if err := rdb.Del(ctx, tc.keys()...).Err(); err != nil {
				t.Fatal(err)
			}
			applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, "2")}) // run 1 again, marks 2
			statuses := applyTimes(t, ctx, hostA, apply.Batch{Writes: counted(h, "1")})
			if statuses[0] != apply.AlreadyDone {
				t.Errorf("host A's write of order 1: %v, want AlreadyDone (host B applied it after A's load)", statuses[0])
			}
			wantCountedOnce(t, ctx, rdb, "1", "2")
		})
	}
}

// TestLeanCheckWithoutExists: the docs say a user without SMISMEMBER,
// EXISTS or HDEL gets every order read; the script asks the ACL about
// SMISMEMBER and HDEL, but calls EXISTS unasked. The scripts before the
// lean check never called EXISTS, and operations.md's list of what they
// call does not name it.
func TestLeanCheckWithoutExists(t *testing.T) {
	ctx, admin, _ := setup(t, 0)
	if err := admin.Do(ctx, "ACL", "SETUSER", "eh", "on", ">pw", "~*", "&*", "+@all", "-exists").Err(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: admin.Options().Addr, Username: "eh", Password: "pw"})
	t.Cleanup(func() { rdb.Close() })
	a := apply.New(rdb, dlStream)
	createOrder(t, ctx, admin, "1")
	createOrder(t, ctx, admin, "2")
	res, err := a.Apply(ctx, apply.Batch{Writes: counted(seen(t, ctx, admin, "1", "2"), "1", "2")})
	if err != nil {
		t.Fatalf("Apply: %v (want every order read instead)", err)
	}
	if want := []apply.Status{apply.Applied, apply.Applied}; !reflect.DeepEqual(res.Statuses, want) {
		t.Fatalf("statuses %v, want %v", res.Statuses, want)
	}
	wantCountedOnce(t, ctx, admin, "1", "2")
}

// TestLeanCheckRetryAfterLostReply: a batch applied whose reply was lost is
// applied again with the horizon of its load; its own run is in the ring,
// so every order is found done, parts of a split batch included.
func TestLeanCheckRetryAfterLostReply(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	ids := []string{"1", "2", "3", "4", "5", "6"}
	for _, id := range ids {
		createOrder(t, ctx, rdb, id)
	}
	h := seen(t, ctx, rdb, ids...)
	a.MaxArgs = 25 // two orders a part (12 arguments each): three runs
	b := apply.Batch{Writes: counted(h, ids...)}
	for _, s := range applyTimes(t, ctx, a, b) {
		if s != apply.Applied {
			t.Fatalf("first apply: %v", s)
		}
	}
	if c, _ := ring(t, ctx, rdb); c["seq"] != "3" {
		t.Fatalf("applies %v, want three runs", c)
	}
	statuses, reads := hmgets(t, ctx, rdb, a, b)
	for i, s := range statuses {
		if s != apply.AlreadyDone {
			t.Fatalf("retry: write %d %v, want AlreadyDone", i, s)
		}
	}
	if reads != len(ids) {
		t.Fatalf("retry read %d orders, want all %d (every one marked since the load)", reads, len(ids))
	}
	wantCountedOnce(t, ctx, rdb, ids...)
	if c, _ := ring(t, ctx, rdb); c["seq"] != "3" {
		t.Fatalf("applies %v: a retry that marked nothing was numbered", c)
	}
}

// TestLeanCheckWindowEdge: a run marked order x right after the load,
// then other runs went on. With AppliesLeanRuns runs since the load the
// ring is asked, and only x is read; with one more the script reads
// every order (twice y: the second attempt leaves x out). Either way x is found done, and y is counted once.
func TestLeanCheckWindowEdge(t *testing.T) {
	for _, tc := range []struct{ others, reads int }{
		{keyspace.AppliesLeanRuns - 1, 1},
		{keyspace.AppliesLeanRuns, 3}, // x and y, then y again without x
	} {
		t.Run(strconv.Itoa(tc.others), func(t *testing.T) {
			t.Parallel()
			ctx, rdb, hostA := setup(t, 0)
			hostB := apply.New(rdb, dlStream)
			for _, id := range []string{"w", "x", "y"} {
				createOrder(t, ctx, rdb, id)
			}
			applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, "w")}) // run 1
			h := seen(t, ctx, rdb, "x", "y")
			applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, "x")}) // run 2
			ids := []string{"w", "x", "y"}
			for n := range tc.others {
				id := "o" + strconv.Itoa(n)
				createOrder(t, ctx, rdb, id)
				applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, id)})
				ids = append(ids, id)
			}
			statuses, reads := hmgets(t, ctx, rdb, hostA, apply.Batch{Writes: counted(h, "x", "y")})
			if want := []apply.Status{apply.AlreadyDone, apply.Applied}; !reflect.DeepEqual(statuses, want) || reads != tc.reads {
				t.Fatalf("after %d runs since the load: %v, %d read; want %v, %d read", tc.others+1, statuses, reads, want, tc.reads)
			}
			wantCountedOnce(t, ctx, rdb, ids...)
		})
	}
}

// TestLeanCheckReplicaMissingTheLastRuns plays a failover to a replica that
// lacks the runs after the load: Redis is put back to what it held after
// run 1 (DUMP/RESTORE of every key), then another run 2 marks other
// orders. Order 1, marked by the lost run 2, is unmarked again and counted
// once; order 2, marked by the new run 2, is found done although the
// horizon's run still has its token.
func TestLeanCheckReplicaMissingTheLastRuns(t *testing.T) {
	ctx, rdb, hostA := setup(t, 0)
	hostB := apply.New(rdb, dlStream)
	for _, id := range []string{"0", "1", "2"} {
		createOrder(t, ctx, rdb, id)
	}
	applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, "0")}) // run 1
	snap := snapshot(t, ctx, rdb)
	h := seen(t, ctx, rdb, "1", "2")
	applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, "1")}) // run 2, lost
	restore(t, ctx, rdb, snap)
	applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, "2")}) // another run 2
	statuses := applyTimes(t, ctx, hostA, apply.Batch{Writes: counted(h, "1", "2")})
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
// runs are numbered anew. Until the count is back at the load's, it is
// behind it; from then on run since holds another token. Either way
// every order is read, and each is counted once after the flush.
func TestLeanCheckAfterFlush(t *testing.T) {
	for _, runs := range []int{1, 3} {
		t.Run(strconv.Itoa(runs), func(t *testing.T) {
			t.Parallel()
			ctx, rdb, hostA := setup(t, 0)
			hostB := apply.New(rdb, dlStream)
			createOrder(t, ctx, rdb, "0")
			applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, "0")})
			createOrder(t, ctx, rdb, "1")
			createOrder(t, ctx, rdb, "2")
			h := seen(t, ctx, rdb, "1", "2")
			if err := rdb.FlushDB(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			ids := []string{"1", "2"}
			for _, id := range ids {
				createOrder(t, ctx, rdb, id)
			}
			// Run 1 marks order 1; the others mark orders of their own.
			applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, "1")})
			for n := 1; n < runs; n++ {
				id := "o" + strconv.Itoa(n)
				createOrder(t, ctx, rdb, id)
				applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, id)})
				ids = append(ids, id)
			}
			if c, _ := ring(t, ctx, rdb); c["seq"] != strconv.Itoa(runs) {
				t.Fatalf("applies %v, want %d runs", c, runs)
			}
			statuses := applyTimes(t, ctx, hostA, apply.Batch{Writes: counted(h, "1", "2")})
			if want := []apply.Status{apply.AlreadyDone, apply.Applied}; !reflect.DeepEqual(statuses, want) {
				t.Fatalf("statuses %v, want %v", statuses, want)
			}
			wantCountedOnce(t, ctx, rdb, ids...)
		})
	}
}

// TestLeanCheckRingSetOfAnotherType: a ring set turned into another type
// is replaced when its number comes round (DEL, then SADD), and a batch
// whose runs since include it reads every order; the count itself turned
// into another type pauses the host with a message that names it and the
// type it needs, nothing written, as the dead-letter stream does.
func TestLeanCheckRingSetOfAnotherType(t *testing.T) {
	t.Run("ring set", func(t *testing.T) {
		ctx, rdb, a := setup(t, 0)
		for _, id := range []string{"0", "1", "2"} {
			createOrder(t, ctx, rdb, id)
		}
		applyTimes(t, ctx, a, apply.Batch{Writes: counted(orders.Horizon{}, "0")}) // run 1
		h := seen(t, ctx, rdb, "1", "2")
		if err := rdb.Set(ctx, keyspace.AppliesSlot(2), "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
		applyTimes(t, ctx, a, apply.Batch{Writes: counted(orders.Horizon{}, "1")}) // run 2 replaces it
		if typ := rdb.Type(ctx, keyspace.AppliesSlot(2)).Val(); typ != "set" {
			t.Fatalf("run 2's ring set is a %s", typ)
		}
		if err := rdb.Set(ctx, keyspace.AppliesSlot(2), "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
		statuses, reads := hmgets(t, ctx, rdb, a, apply.Batch{Writes: counted(h, "1", "2")})
		if want := []apply.Status{apply.AlreadyDone, apply.Applied}; !reflect.DeepEqual(statuses, want) || reads != 3 {
			t.Fatalf("statuses %v, %d read; want 1 done, 2 applied, every order read (then 2 again)", statuses, reads)
		}
		wantCountedOnce(t, ctx, rdb, "0", "1", "2")
	})
	t.Run("count", func(t *testing.T) {
		ctx, rdb, a := setup(t, 0)
		createOrder(t, ctx, rdb, "1")
		if err := rdb.Set(ctx, keyspace.AppliesKey, "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
		_, err := a.Apply(ctx, apply.Batch{Writes: counted(orders.Horizon{}, "1")})
		var own *apply.OwnKeyError
		if !errors.As(err, &own) || own.Key != keyspace.AppliesKey || own.Have != "string" || own.Want != "hash" {
			t.Fatalf("Apply = %v, want an OwnKeyError for %s", err, keyspace.AppliesKey)
		}
		if want := "eventhost's key eventhost:applies holds a string, not a hash: rename or delete it"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
		if n := rdb.Exists(ctx, "times", "counted").Val(); n != 0 || rdb.HLen(ctx, orderKey("1")).Val() != 5 {
			t.Fatalf("part of the batch was written")
		}
	})
}

// TestLeanCheckUnnumberedMarksAfterTheLoad: a write no run numbered (an
// order hash restored by hand, a host older than the count: a rolling
// upgrade, against design.md's rule to stop older hosts first) marks an
// order done after a newer host loaded it. The newer host's lean check
// does not read that order; its own marker write finds the markers there:
// the HSETNX of its list finds a list naming the plugins, and, for plugins
// whose names make no list, the HSET of a field each sets none.
func TestLeanCheckUnnumberedMarksAfterTheLoad(t *testing.T) {
	long := func(c string) string { return strings.Repeat(c, 40) } // two make no list
	for _, tt := range []struct {
		name              string
		invoices, summary string
		marks             []any
	}{
		{"a list", "invoices", "summary", []any{keyspace.DoneListField, "1700000000000 invoices summary"}},
		{"a field each", long("i"), long("s"), []any{keyspace.DoneField(long("i")), "1700000000000000", keyspace.DoneField(long("s")), "1700000000000000"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, rdb, hostA := setup(t, 0)
			hostB := apply.New(rdb, dlStream)
			for _, id := range []string{"0", "1", "2"} {
				createOrder(t, ctx, rdb, id)
			}
			countedBy := func(h orders.Horizon, id string) apply.Write {
				w := write(id, tt.invoices, eff("SADD", "counted", id), eff("HINCRBY", "times", id, "1"))
				w.Seen = h
				return w
			}
			applyTimes(t, ctx, hostB, apply.Batch{Writes: []apply.Write{countedBy(orders.Horizon{}, "0")}}) // run 1
			h := seen(t, ctx, rdb, "1", "2")
			// The unnumbered write for order 1: its effects and its
			// markers, in one step, and no run.
			if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, orderKey("1"), tt.marks...)
				p.SAdd(ctx, "counted", "1")
				p.HIncrBy(ctx, "times", "1", 1)
				p.HIncrBy(ctx, "summary", "1", 1)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			summary := write("1", tt.summary, eff("HINCRBY", "summary", "1", "1"))
			summary.Seen = h
			writes := []apply.Write{countedBy(h, "1"), summary, countedBy(h, "2")}
			statuses := applyTimes(t, ctx, hostA, apply.Batch{Writes: writes})
			if want := []apply.Status{apply.AlreadyDone, apply.AlreadyDone, apply.Applied}; !reflect.DeepEqual(statuses, want) {
				t.Errorf("statuses %v, want %v", statuses, want)
			}
			wantCountedOnce(t, ctx, rdb, "0", "1", "2")
			if got := rdb.HGetAll(ctx, "summary").Val(); !reflect.DeepEqual(got, map[string]string{"1": "1"}) {
				t.Errorf("summary = %v, want order 1 counted once", got)
			}
			// Order 1 holds the markers the unnumbered write left, and
			// only those: a list as it was, fields with this run's times
			// (HSET cannot set only those not set yet).
			want := map[string]string{"ts": "1700000000", "qty": "3", "cost": "12.5", "event": "rock", "who": "ann"}
			for k := 0; k < len(tt.marks); k += 2 {
				want[tt.marks[k].(string)] = tt.marks[k+1].(string)
			}
			got := rdb.HGetAll(ctx, orderKey("1")).Val()
			for f := range got {
				if strings.HasPrefix(f, keyspace.DonePrefix) {
					got[f] = want[f]
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("order 1 = %v, want %v", got, want)
			}
		})
	}
}

// TestLeanCheckAcrossChunks: the script reads KEYS 1000 at a time (EXISTS,
// SMISMEMBER); orders another host marked on either side of a chunk's
// edge are found done, and only they are read.
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
	createOrder(t, ctx, rdb, "0")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, "0")}) // run 1
	h := seen(t, ctx, rdb, ids...)
	// Positions in A's batch (1-based): chunk edges at 1000 and 2000.
	done := []int{1, 999, 1000, 1001, 2000, 2001, 2500}
	var byB []string
	for _, p := range done {
		byB = append(byB, ids[p-1])
	}
	applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, byB[:3]...)}) // run 2
	applyTimes(t, ctx, hostB, apply.Batch{Writes: counted(orders.Horizon{}, byB[3:]...)}) // run 3
	statuses, reads := hmgets(t, ctx, rdb, hostA, apply.Batch{Writes: counted(h, ids...)})
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
	if reads != len(done) {
		t.Errorf("%d orders read, want the %d marked since the load", reads, len(done))
	}
	wantCountedOnce(t, ctx, rdb, append(ids, "0")...)
}
