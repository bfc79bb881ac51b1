package apply_test

import (
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/keyspace"
)

// TestLeanCheckAgreesWithReadingEveryOrder: random histories of runs
// before and after a load (repeated orders and pairs, dead letters, plugin
// names no list holds, batches split into parts, an order hash deleted or
// replaced since the load), then one batch of the pairs the load saw
// undone, applied once with the lean check and once reading every order,
// from the same state. Each pair must be counted at most once, and both
// must agree on every status, marker, count and dead letter. "values" adds
// increments that overflow: type and value problems. 300 rounds each take
// about two seconds; LEANFUZZ=n runs n, LEANSEED=s starts from seed s.
func TestLeanCheckAgreesWithReadingEveryOrder(t *testing.T) {
	for _, values := range []bool{false, true} {
		t.Run(map[bool]string{false: "counters", true: "values"}[values], func(t *testing.T) {
			t.Parallel()
			leanDifferential(t, values)
		})
	}
}

func leanDifferential(t *testing.T, values bool) {
	rounds, _ := strconv.Atoi(os.Getenv("LEANFUZZ"))
	if rounds <= 0 {
		rounds = 300
	}
	ctx, rdb, _ := setup(t, 0)
	long := strings.Repeat("l", 60)
	plugins := []string{"a", "b", "c", long, "sp ace"}
	ids := []string{"1", "2", "3", "4", "5", "6"}
	seed := int64(1)
	if s, err := strconv.Atoi(os.Getenv("LEANSEED")); err == nil {
		seed = int64(s)
	}
	rng := rand.New(rand.NewSource(seed))
	wr := func(id, p string) apply.Write {
		w := write(id, p, eff("HINCRBY", "times", id+"/"+p, "1"), eff("SADD", "set:"+p, id))
		if p == "a" && values {
			// Three of these overflow: value problems.
			w.Effects = append(w.Effects, eff("HINCRBY", "totals", "all", "3000000000000000000"))
		}
		return w
	}
	// pick returns writes of n pairs drawn from pool, repeats allowed.
	pick := func(pool [][2]string, n int) []apply.Write {
		var ws []apply.Write
		for range n {
			if len(pool) == 0 {
				break
			}
			pr := pool[rng.Intn(len(pool))]
			ws = append(ws, wr(pr[0], pr[1]))
		}
		return ws
	}
	// maybeDeadLetter returns, one time in oneIn, a dead letter of a random
	// order for a random plugin.
	maybeDeadLetter := func(oneIn int, reason string) []deadletter.Entry {
		if rng.Intn(oneIn) != 0 {
			return nil
		}
		id := ids[rng.Intn(len(ids))]
		return []deadletter.Entry{{OrderID: id, Plugin: plugins[rng.Intn(len(plugins))], Reason: reason, Attempts: 1, OrderKey: orderKey(id)}}
	}
	randomRun := func(a *apply.Applier, pool [][2]string) {
		ws := pick(pool, rng.Intn(5))
		dl := maybeDeadLetter(4, "x")
		if len(ws) == 0 && len(dl) == 0 {
			return
		}
		a.MaxArgs = 5 + rng.Intn(40)
		if _, err := a.Apply(ctx, apply.Batch{Writes: ws, DeadLetters: dl}); err != nil {
			t.Fatalf("run: %v", err)
		}
	}
	all := func() [][2]string {
		var out [][2]string
		for _, id := range ids {
			for _, p := range plugins {
				out = append(out, [2]string{id, p})
			}
		}
		return out
	}()
	for round := range rounds {
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			createOrder(t, ctx, rdb, id)
		}
		pre := apply.New(rdb, dlStream)
		for range rng.Intn(4) {
			randomRun(pre, all)
		}
		// The load.
		done := map[[2]string]bool{}
		for _, id := range ids {
			f := rdb.HGetAll(ctx, orderKey(id)).Val()
			for _, p := range plugins {
				if keyspace.Done(f, p) {
					done[[2]string{id, p}] = true
				}
			}
		}
		var undone [][2]string
		for _, pr := range all {
			if !done[pr] {
				undone = append(undone, pr)
			}
		}
		// The batch: pairs undone at the load, orders possibly repeated.
		ws := pick(undone, 1+rng.Intn(10))
		dl := maybeDeadLetter(3, "y")
		// Since the load: runs of other hosts, an order deleted or replaced.
		since := apply.New(rdb, dlStream)
		for range rng.Intn(3) {
			randomRun(since, undone)
		}
		switch rng.Intn(6) {
		case 0:
			rdb.Del(ctx, orderKey(ids[rng.Intn(len(ids))]))
		case 1:
			k := orderKey(ids[rng.Intn(len(ids))])
			rdb.Del(ctx, k)
			rdb.Set(ctx, k, "x", 0)
		}
		snap := snapshot(t, ctx, rdb)
		maxArgs := 5 + rng.Intn(60)
		run := func(a *apply.Applier) ([]apply.Status, map[string]any) {
			a.MaxArgs = maxArgs
			res, err := a.Apply(ctx, apply.Batch{Writes: ws, DeadLetters: dl})
			if err != nil {
				t.Fatalf("round %d: Apply: %v", round, err)
			}
			st := map[string]any{}
			for _, id := range ids {
				st[id] = markersOf(t, ctx, rdb, orderKey(id))
			}
			st["times"] = rdb.HGetAll(ctx, "times").Val()
			st["dl"] = rdb.XLen(ctx, dlStream).Val()
			for k, v := range rdb.HGetAll(ctx, "times").Val() {
				if v != "1" {
					t.Errorf("round %d: pair %s counted %s times; batch %v", round, k, v, describeWrites(ws))
				}
			}
			return res.Statuses, st
		}
		leanSt, leanState := run(apply.New(rdb, dlStream))
		restore(t, ctx, rdb, snap)
		allSt, allState := run(readingAll(t, rdb))
		if !reflect.DeepEqual(leanSt, allSt) || !reflect.DeepEqual(leanState, allState) {
			t.Fatalf("round %d: lean %v %v\nread-all %v %v\nbatch %v", round, leanSt, leanState, allSt, allState, describeWrites(ws))
		}
	}
}

// eachCheckPath runs f as a subtest twice: with an Applier that reads every
// order's markers, and with one that uses the lean check.
func eachCheckPath(t *testing.T, f func(t *testing.T, newApplier func(*redis.Client) *apply.Applier)) {
	t.Run("read every order", func(t *testing.T) {
		f(t, func(rdb *redis.Client) *apply.Applier { return readingAll(t, rdb) })
	})
	t.Run("lean", func(t *testing.T) {
		f(t, func(rdb *redis.Client) *apply.Applier { return apply.New(rdb, dlStream) })
	})
}

func describeWrites(ws []apply.Write) string {
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "%s:%.5s ", w.OrderID, w.Plugin)
	}
	return b.String()
}

// TestReviewLeanDoneSinceLoadNotRefused: host B applies (invoices, 1),
// whose increment brings a counter near the int64 limit, after host A
// loaded order 1; A then applies the same pair. The pair is done: reading
// every order reports it AlreadyDone. The lean check reads no order in
// phase 1, so the value check (which replays the done pair's increment
// onto B's result) refuses the batch first, and the pair comes back
// Refused: a dead letter, and eventhost:dead:invoices on an order that was
// counted, for a pair that needs nothing.
func TestReviewLeanDoneSinceLoadNotRefused(t *testing.T) {
	eachCheckPath(t, func(t *testing.T, newApplier func(*redis.Client) *apply.Applier) {
		ctx, rdb, hostB := setup(t, 0)
		createOrder(t, ctx, rdb, "1")
		createOrder(t, ctx, rdb, "2")
		inc := func(id string) apply.Write {
			return write(id, "invoices", eff("HINCRBY", "totals", "all", "5000000000000000000"), eff("HINCRBY", "times", id, "1"))
		}
		// Host A has loaded orders 1 and 2; host B applies order 1.
		applyTimes(t, ctx, hostB, apply.Batch{Writes: []apply.Write{inc("1")}})
		res, err := newApplier(rdb).Apply(ctx, apply.Batch{Writes: []apply.Write{inc("1"), write("2", "invoices", eff("HINCRBY", "times", "2", "1"))}})
		if err != nil {
			t.Fatal(err)
		}
		if want := []apply.Status{apply.AlreadyDone, apply.Applied}; !reflect.DeepEqual(res.Statuses, want) {
			t.Errorf("statuses %v, want %v (reasons %v)", res.Statuses, want, res.Reasons)
		}
		if n := rdb.XLen(ctx, dlStream).Val(); n != 0 {
			t.Errorf("%d dead letters, want none: the pair was counted", n)
		}
		if got := markersOf(t, ctx, rdb, orderKey("1")); !reflect.DeepEqual(got, map[string]string{keyspace.DoneListField: "T invoices"}) {
			t.Errorf("order 1's markers %v, want B's list alone", got)
		}
		wantCountedOnce(t, ctx, rdb, "1", "2")
	})
}

// TestReviewDonePairsStepsRefuseOthers: the value checks replay every
// planned write's steps, those of pairs the same run finds done included.
// Host B applies (invoices, 1), +4e18 on a counter; host A, which loaded
// orders 1 and 2 before, applies both: 1 is done, and 2's +4e18 alone
// fits (8e18 < 2^63), but the check adds 1's step too and refuses 2 as an
// overflow, dead-lettering a pair that would have landed. (Not from the
// lean check: reading every order does the same.)
func TestReviewDonePairsStepsRefuseOthers(t *testing.T) {
	eachCheckPath(t, func(t *testing.T, newApplier func(*redis.Client) *apply.Applier) {
		ctx, rdb, hostB := setup(t, 0)
		createOrder(t, ctx, rdb, "1")
		createOrder(t, ctx, rdb, "2")
		inc := func(id string) apply.Write {
			return write(id, "invoices", eff("HINCRBY", "totals", "all", "4000000000000000000"), eff("HINCRBY", "times", id, "1"))
		}
		applyTimes(t, ctx, hostB, apply.Batch{Writes: []apply.Write{inc("1")}})
		res, err := newApplier(rdb).Apply(ctx, apply.Batch{Writes: []apply.Write{inc("1"), inc("2")}})
		if err != nil {
			t.Fatal(err)
		}
		if want := []apply.Status{apply.AlreadyDone, apply.Applied}; !reflect.DeepEqual(res.Statuses, want) {
			t.Errorf("statuses %v, want %v (reasons %v)", res.Statuses, want, res.Reasons)
		}
		if got := rdb.HGet(ctx, "totals", "all").Val(); got != "8000000000000000000" {
			t.Errorf("totals = %s, want 8e18", got)
		}
		wantCountedOnce(t, ctx, rdb, "1", "2")
	})
}
