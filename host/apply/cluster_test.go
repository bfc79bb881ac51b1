package apply

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/redisconn"
	"github.com/eventhost/eventhost/host/rediserr"
	"github.com/eventhost/eventhost/sdk"
)

const testDL = "eventhost:deadletter"

// TestCluster runs the cluster apply path against a real 3-master cluster,
// comparing every key with what the single-node path leaves for the same
// batches on a single redis-server.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	single := redistest.Start(t).Client()
	ctx := t.Context()
	newApplier := func() *Applier {
		a := New(cl.Client(), testDL)
		a.WaitReplicas, a.WaitTimeout = 1, 2*time.Second
		if a.cluster == nil {
			t.Fatal("New on a ClusterClient did not pick the cluster path")
		}
		return a
	}
	ref := New(single, testDL)

	t.Run("equals single node, and a second apply changes nothing", func(t *testing.T) {
		a := newApplier()
		rng := rand.New(rand.NewPCG(1, 2))
		for round := range 5 {
			prefix := fmt.Sprintf("eq%d:", round)
			b := randomBatch(rng, prefix, 40)
			createOrders(t, ctx, cl.Client(), single, b)
			applyBoth(t, ctx, a, ref, b, Applied)
			again, err := a.Apply(ctx, b)
			if err != nil {
				t.Fatalf("second Apply: %v", err)
			}
			for i, st := range again.Statuses {
				if st != AlreadyDone {
					t.Errorf("second Apply: write %d is %v, want AlreadyDone", i, st)
				}
			}
			sameState(t, ctx, cl.Client(), single, prefix)
			checkRecords(t, ctx, cl.Client(), prefix, pairsOf(b), "right after the batch")
		}
	})

	t.Run("redo after a crash at each step is exact", func(t *testing.T) {
		// A crash loses what the host knew: the redo is another applier.
		// The dead letter, written before the markers, is written again
		// after a crash past it; a retry in the same process (an error,
		// not a crash: "mark/retry") writes it once.
		wantDead := map[string]int{"write": 1, "dead": 1, "mark": 2, "settle": 2, "cleanup": 2, "mark/retry": 1}
		wantStatus := map[string]Status{"write": Applied, "dead": Applied, "mark": Applied, "settle": AlreadyDone, "cleanup": AlreadyDone, "mark/retry": Applied}
		rng := rand.New(rand.NewPCG(3, 4))
		for _, run := range []string{"write", "dead", "mark", "settle", "cleanup", "mark/retry"} {
			stage, retry := strings.CutSuffix(run, "/retry")
			prefix := "crash-" + strings.ReplaceAll(run, "/", "-") + ":"
			a := newApplier()
			b := randomBatch(rng, prefix, 60)
			// One pair Redis refuses: its key holds a string.
			bad := prefix + "wrongtype"
			b.Writes = append(b.Writes, Write{OrderKey: prefix + "order:bad", Marker: keyspace.DoneField("p1"), Plugin: "p1", OrderID: prefix + "bad",
				Effects: []sdk.Effect{{Command: "SADD", Key: prefix + "set:0", Args: []string{"bad"}}, {Command: "HINCRBY", Key: bad, Args: []string{"f", "1"}}}})
			createOrders(t, ctx, cl.Client(), single, b)
			for _, c := range []redis.Cmdable{cl.Client(), single} {
				c.Set(ctx, bad, "x", 0)
			}
			a.cluster.crashAt = stage
			if _, err := a.Apply(ctx, b); !errors.Is(err, errCrash) {
				t.Fatalf("%s: Apply with a crash = %v, want the simulated crash", stage, err)
			}
			a.cluster.crashAt = ""
			if !retry {
				a = newApplier()
			}
			res, err := a.Apply(ctx, b)
			if err != nil {
				t.Fatalf("%s: redo: %v", stage, err)
			}
			for i, st := range res.Statuses {
				want := wantStatus[run]
				if i == len(b.Writes)-1 {
					want = Refused
				}
				if st != want {
					t.Errorf("%s: redo: write %d is %v, want %v (%s)", stage, i, st, want, res.Reasons[i])
				}
			}
			if _, err := ref.Apply(ctx, b); err != nil {
				t.Fatal(err)
			}
			sameState(t, ctx, cl.Client(), single, prefix)
			if n := deadLettersOf(t, ctx, cl.Client(), prefix); n != wantDead[run] {
				t.Errorf("%s: %d dead letters for the refused pair, want %d", run, n, wantDead[run])
			}
			landed := b
			landed.Writes = b.Writes[:len(b.Writes)-1]
			pairs := pairsOf(landed)
			checkRecords(t, ctx, cl.Client(), prefix, pairs, stage+": after the redo")
		}
	})

	t.Run("a pair refused in one slot lands in none", func(t *testing.T) {
		a := newApplier()
		p := "refuse:"
		// Keys in different slots (checked below).
		okKey, badKey := p+"members", p+"counts"
		if slotOf(okKey) == slotOf(badKey) {
			t.Fatal("test keys share a slot")
		}
		cl.Client().Set(ctx, badKey, "not a hash", 0)
		w1 := Write{OrderKey: p + "o1", Marker: keyspace.DoneField("inv"), Plugin: "inv", OrderID: "o1", Channel: "c",
			Effects: []sdk.Effect{{Command: "SADD", Key: okKey, Args: []string{"o1"}}, {Command: "HINCRBY", Key: badKey, Args: []string{"n", "1"}}}}
		w2 := Write{OrderKey: p + "o2", Marker: keyspace.DoneField("inv"), Plugin: "inv", OrderID: "o2", Channel: "c",
			Effects: []sdk.Effect{{Command: "SADD", Key: okKey, Args: []string{"o2"}}}}
		b := Batch{Writes: []Write{w1, w2}}
		createOrders(t, ctx, cl.Client(), nil, b)
		res, err := a.Apply(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		want := "refused effect: key refuse:counts holds a string, but its effects need a hash"
		if res.Statuses[0] != Refused || res.Reasons[0] != want || res.Statuses[1] != Applied {
			t.Fatalf("Apply = %v %v, want [Refused Applied] and %q", res.Statuses, res.Reasons, want)
		}
		if got := cl.Client().SMembers(ctx, okKey).Val(); !reflect.DeepEqual(got, []string{"o2"}) {
			t.Errorf("%s = %v, want only o2's member: the refused pair's effect in another slot landed", okKey, got)
		}
		if n := recordEntries(t, ctx, cl.Client(), pairField(w1)); n != 0 {
			t.Errorf("the refused pair has %d record entries, want none", n)
		}
		// A pair within one slot is not checked first: its write script
		// refuses it whole.
		w0 := Write{OrderKey: p + "o0", Marker: keyspace.DoneField("one"), Plugin: "one", OrderID: "o0", Channel: "c",
			Effects: []sdk.Effect{{Command: "HINCRBY", Key: badKey, Args: []string{"n", "1"}}}}
		createOrders(t, ctx, cl.Client(), nil, Batch{Writes: []Write{w0}})
		if res, err := a.Apply(ctx, Batch{Writes: []Write{w0}}); err != nil || res.Statuses[0] != Refused || res.Reasons[0] != want {
			t.Errorf("single-slot pair on a key of another type: %v %v %v, want Refused: %s", res.Statuses, res.Reasons, err, want)
		}
		// A set key of another type, written with plain SADDs: refused in
		// the check (the pair's hash in another slot stays untouched) and,
		// for a pair within one slot, by the write itself.
		strKey, hashKey := p+"notaset", p+"tally"
		if slotOf(strKey) == slotOf(hashKey) {
			t.Fatal("test keys share a slot")
		}
		cl.Client().Set(ctx, strKey, "x", 0)
		w5 := Write{OrderKey: p + "o5", Marker: keyspace.DoneField("inv"), Plugin: "inv", OrderID: "o5", Channel: "c",
			Effects: []sdk.Effect{{Command: "SADD", Key: strKey, Args: []string{"o5"}}, {Command: "HINCRBY", Key: hashKey, Args: []string{"n", "1"}}}}
		w6 := Write{OrderKey: p + "o6", Marker: keyspace.DoneField("one"), Plugin: "one", OrderID: "o6", Channel: "c",
			Effects: []sdk.Effect{{Command: "SADD", Key: strKey, Args: []string{"o6"}}}}
		createOrders(t, ctx, cl.Client(), nil, Batch{Writes: []Write{w5, w6}})
		setWant := "refused effect: key refuse:notaset holds a string, but its effects need a set"
		for _, w := range []Write{w5, w6} {
			res, err := a.Apply(ctx, Batch{Writes: []Write{w}})
			if err != nil || res.Statuses[0] != Refused || res.Reasons[0] != setWant {
				t.Errorf("%s: %v %v %v, want Refused: %s", w.OrderID, res.Statuses, res.Reasons, err, setWant)
			}
		}
		if n := cl.Client().Exists(ctx, hashKey).Val(); n != 0 {
			t.Errorf("%s exists: the refused pair's effect in another slot landed", hashKey)
		}
		if got := cl.Client().Get(ctx, strKey).Val(); got != "x" {
			t.Errorf("%s = %q, want it untouched", strKey, got)
		}

		m := cl.Client().HMGet(ctx, w1.OrderKey, w1.Marker, keyspace.DeadField("inv")).Val()
		if m[0] != nil || m[1] == nil {
			t.Errorf("order o1 markers done=%v dead=%v, want no done marker and a dead marker", m[0], m[1])
		}

		// The same pair again, after it had landed in okKey's slot (a
		// crash, then the key's type changed): a partly applied dead
		// letter, and its record stays so that a replay applies the rest.
		w3 := w1
		w3.OrderKey, w3.OrderID = p+"o3", "o3"
		w3.Effects = []sdk.Effect{{Command: "SADD", Key: okKey, Args: []string{"o3"}}, {Command: "HINCRBY", Key: badKey, Args: []string{"n", "1"}}}
		createOrders(t, ctx, cl.Client(), nil, Batch{Writes: []Write{w3}})
		cl.Client().SAdd(ctx, okKey, "o3")
		cl.Client().HSet(ctx, recordKey(a.cluster.tags[slotOf(okKey)]), pairField(w3), "1")
		res, err = a.Apply(ctx, Batch{Writes: []Write{w3}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Statuses[0] != Refused || !strings.HasPrefix(res.Reasons[0], "partly applied, refused effect: key refuse:counts") {
			t.Fatalf("partly applied pair: %v %v", res.Statuses, res.Reasons)
		}
		if got := cl.Client().SMembers(ctx, okKey).Val(); len(got) != 2 {
			t.Errorf("%s = %v, want o2 and o3 once", okKey, got)
		}
		if n := recordEntries(t, ctx, cl.Client(), pairField(w3)); n != 1 {
			t.Errorf("the partly applied pair has %d record entries, want 1 (kept for its replay)", n)
		}
		// The replay, once the key is fixed, lands the rest, once.
		cl.Client().Del(ctx, badKey)
		res, err = a.Apply(ctx, Batch{Writes: []Write{w3}})
		if err != nil || res.Statuses[0] != Applied {
			t.Fatalf("replay: %v %v", res.Statuses, err)
		}
		if got := cl.Client().HGetAll(ctx, badKey).Val(); !reflect.DeepEqual(got, map[string]string{"n": "1"}) {
			t.Errorf("%s = %v after the replay, want n=1", badKey, got)
		}
		if got := cl.Client().SMembers(ctx, okKey).Val(); len(got) != 2 {
			t.Errorf("%s = %v after the replay, want o2 and o3 once", okKey, got)
		}
	})

	t.Run("two hosts applying the same batches count each pair once", func(t *testing.T) {
		a1, a2 := newApplier(), newApplier()
		rng := rand.New(rand.NewPCG(5, 6))
		for round := range 8 {
			prefix := fmt.Sprintf("twin%d:", round)
			b := randomBatch(rng, prefix, 30)
			createOrders(t, ctx, cl.Client(), single, b)
			var wg sync.WaitGroup
			errs := make([]error, 2)
			results := make([]Result, 2)
			for i, a := range []*Applier{a1, a2} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = a.Apply(ctx, b)
				}()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			for i := range b.Writes {
				if n := btoi(results[0].Statuses[i] == Applied) + btoi(results[1].Statuses[i] == Applied); n != 1 {
					t.Errorf("round %d write %d: Applied by %d hosts (%v, %v), want 1", round, i, n, results[0].Statuses[i], results[1].Statuses[i])
				}
			}
			if _, err := ref.Apply(ctx, b); err != nil {
				t.Fatal(err)
			}
			sameState(t, ctx, cl.Client(), single, prefix)
		}
	})

	t.Run("records are bounded", func(t *testing.T) {
		a := newApplier()
		var offset time.Duration
		a.now = func() time.Time { return time.Now().Add(offset) }
		rng := rand.New(rand.NewPCG(7, 8))
		step := RecordKeep / 4
		var history []map[string]int // per batch: record field → slots
		for round := range 12 {
			prefix := fmt.Sprintf("bound%d:", round)
			b := randomBatch(rng, prefix, 20)
			createOrders(t, ctx, cl.Client(), nil, b)
			if _, err := a.Apply(ctx, b); err != nil {
				t.Fatal(err)
			}
			history = append(history, pairsOf(b))
			// Batches applied less than RecordKeep ago keep their entries;
			// older ones were deleted at the start of this batch.
			want := 0
			for j := max(0, round-3); j <= round; j++ {
				for _, n := range history[j] {
					want += n
				}
			}
			if got := recordEntries(t, ctx, cl.Client(), " bound"); got != want {
				t.Fatalf("after batch %d: %d record entries, want %d (the last 4 batches' pairs, one per slot they touch)", round, got, want)
			}
			offset += step
		}
		// A host that died before its cleanups leaves entries: the sweep
		// deletes those older than RecordKeep, and no other.
		a2 := newApplier()
		a2.cluster.clockShift = offset + RecordKeep
		if _, _, err := a2.SweepRecords(ctx); err != nil {
			t.Fatal(err)
		}
		if got := recordEntries(t, ctx, cl.Client(), " bound"); got != 0 {
			t.Errorf("after a sweep %s later: %d record entries, want 0", RecordKeep, got)
		}
	})

	t.Run("an attempt past its window writes nothing", func(t *testing.T) {
		a := newApplier()
		// Redis' clock, as the host read it with the markers, says the
		// attempt started long ago: it is past its deadline when the
		// scripts run.
		a.cluster.clockShift = -2 * attemptWindow
		b := randomBatch(rand.New(rand.NewPCG(9, 10)), "late:", 10)
		createOrders(t, ctx, cl.Client(), nil, b)
		if _, err := a.Apply(ctx, b); !errors.Is(err, errLate) {
			t.Fatalf("Apply = %v, want errLate", err)
		}
		if got := clusterState(t, ctx, cl.Client(), "late:"); len(got) != len(uniqueOrders(b)) {
			t.Errorf("after a late attempt: %d keys, want only the %d order hashes", len(got), len(uniqueOrders(b)))
		}
	})
}

// A WAIT short of replicas pauses the pipeline with its own reason.
func TestReplicaShortfallPauses(t *testing.T) {
	err := fmt.Errorf("write 3 hash slots' share of the batch: %w", replicaShortfall("NOREPLICAS writes on n:1 reached 0 of 1 replicas"))
	if class, reason := rediserr.Classify(err); class != rediserr.Paused || reason != "redis has too few replicas (NOREPLICAS)" {
		t.Errorf("Classify = %v %q, want Paused for too few replicas", class, reason)
	}
	for _, reply := range []string{"MOVED 7405 127.0.0.1:7001", "ASK 7405 127.0.0.1:7001"} {
		if class, reason := rediserr.Classify(replicaShortfall(reply)); class != rediserr.Paused || !strings.Contains(reason, reply[:strings.Index(reply, " ")]) {
			t.Errorf("Classify(%s) = %v %q, want Paused naming it", reply, class, reason)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// randomBatch returns writes of two plugins for n orders under prefix,
// over keys spread across many hash slots, of every command family.
func randomBatch(rng *rand.Rand, prefix string, n int) Batch {
	var b Batch
	for o := range n {
		id := fmt.Sprintf("%s%d", prefix, o)
		for _, plugin := range []string{"p1", "p2"} {
			w := Write{OrderKey: prefix + "order:" + id, Marker: keyspace.DoneField(plugin), Plugin: plugin, OrderID: id, Channel: "c"}
			for range 1 + rng.IntN(4) {
				k := rng.IntN(6)
				var e sdk.Effect
				switch rng.IntN(7) {
				case 0:
					e = sdk.Effect{Command: "HINCRBY", Key: fmt.Sprintf("%ssum:%d", prefix, k), Args: []string{"n", fmt.Sprint(rng.IntN(100) - 20)}}
				case 1:
					e = sdk.Effect{Command: "HINCRBYFLOAT", Key: fmt.Sprintf("%ssum:%d", prefix, k), Args: []string{"total", fmt.Sprintf("%d.%02d", rng.IntN(100), rng.IntN(100))}}
				case 2:
					e = sdk.Effect{Command: "SADD", Key: fmt.Sprintf("%sset:%d", prefix, k), Args: []string{id}}
				case 3:
					e = sdk.Effect{Command: "INCRBY", Key: fmt.Sprintf("%scount:%d", prefix, k), Args: []string{fmt.Sprint(rng.IntN(10))}}
				case 4:
					e = sdk.Effect{Command: "ZINCRBY", Key: fmt.Sprintf("%srank:%d", prefix, k), Args: []string{"1.5", fmt.Sprint("m", rng.IntN(5))}}
				case 5:
					e = sdk.Effect{Command: "BITFIELD", Key: fmt.Sprintf("%shist:%d", prefix, k), Args: []string{"INCRBY", "u8", fmt.Sprintf("#%d", rng.IntN(24)), fmt.Sprint(rng.IntN(200))}}
				default:
					e = sdk.Effect{Command: "HSET", Key: fmt.Sprintf("%slast:%d", prefix, k), Args: []string{"who", id}}
				}
				w.Effects = append(w.Effects, e)
			}
			b.Writes = append(b.Writes, w)
		}
	}
	return b
}

func uniqueOrders(b Batch) map[string]bool {
	out := map[string]bool{}
	for _, w := range b.Writes {
		out[w.OrderKey] = true
	}
	return out
}

// createOrders stores the order hashes of b's writes on each client given.
func createOrders(t *testing.T, ctx context.Context, cluster, single redis.Cmdable, b Batch) {
	t.Helper()
	for k := range uniqueOrders(b) {
		for _, c := range []redis.Cmdable{cluster, single} {
			if c == nil {
				continue
			}
			if err := c.HSet(ctx, k, "ts", "1700000000", "qty", "1").Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// applyBoth applies b on the cluster and on the single node, and checks
// every write came out as want.
func applyBoth(t *testing.T, ctx context.Context, a, ref *Applier, b Batch, want Status) {
	t.Helper()
	for _, ap := range []*Applier{a, ref} {
		res, err := ap.Apply(ctx, b)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		for i, st := range res.Statuses {
			if st != want {
				t.Fatalf("write %d: %v (%s), want %v", i, st, res.Reasons[i], want)
			}
		}
	}
}

// pairsOf returns each pair's record field and how many slots' records
// hold it: one per slot its effects touch, but for slots where the batch
// only adds set members to one key (plainShare: no record needed).
func pairsOf(b Batch) map[string]int {
	keys := map[int]map[string]bool{} // slot → keys written
	plain := map[int]bool{}
	for _, w := range b.Writes {
		for _, e := range w.Effects {
			s := slotOf(e.Key)
			if keys[s] == nil {
				keys[s] = map[string]bool{}
				plain[s] = true
			}
			keys[s][e.Key] = true
			plain[s] = plain[s] && e.Command == "SADD"
		}
	}
	out := map[string]int{}
	for _, w := range b.Writes {
		slots := map[int]bool{}
		for _, e := range w.Effects {
			if s := slotOf(e.Key); !plain[s] || len(keys[s]) > 1 {
				slots[s] = true
			}
		}
		out[pairField(w)] = len(slots)
	}
	return out
}

// sameState checks that every key under prefix holds the same on the
// cluster as on the single node, order hashes' markers aside from their
// times.
func sameState(t *testing.T, ctx context.Context, cc *redis.ClusterClient, single *redis.Client, prefix string) {
	t.Helper()
	got, want := clusterState(t, ctx, cc, prefix), stateOf(t, ctx, single, prefix)
	if !reflect.DeepEqual(got, want) {
		var diffs []string
		for k := range merge(got, want) {
			if got[k] != want[k] {
				diffs = append(diffs, fmt.Sprintf("%s: cluster %q, single node %q", k, got[k], want[k]))
			}
		}
		sort.Strings(diffs)
		t.Errorf("%d keys differ:\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
}

func merge(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func clusterState(t *testing.T, ctx context.Context, cc *redis.ClusterClient, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := redisconn.ForEachMaster(ctx, cc, func(ctx context.Context, node redis.UniversalClient) error {
		for k, v := range stateOf(t, ctx, node, prefix) {
			out[k] = v
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stateOf reads every key under prefix, marker times blanked and done
// markers a field each: one node marks an order's plugins with one list,
// a cluster a pair at a time.
func stateOf(t *testing.T, ctx context.Context, c redis.UniversalClient, prefix string) map[string]string {
	t.Helper()
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		var lines []string
		switch typ := c.Type(ctx, k).Val(); typ {
		case "hash":
			for f, v := range c.HGetAll(ctx, k).Val() {
				if f == keyspace.DoneListField {
					for p := range keyspace.DoneListPlugins(v) {
						lines = append(lines, keyspace.DoneField(p)+"=(time)")
					}
					continue
				}
				if strings.HasPrefix(f, "eventhost:") {
					v = "(time)"
				}
				lines = append(lines, f+"="+v)
			}
		case "set":
			lines = c.SMembers(ctx, k).Val()
		case "zset":
			for _, z := range c.ZRangeWithScores(ctx, k, 0, -1).Val() {
				lines = append(lines, fmt.Sprintf("%v=%v", z.Member, z.Score))
			}
		case "string":
			lines = []string{fmt.Sprintf("%q", c.Get(ctx, k).Val())}
		default:
			lines = []string{typ}
		}
		sort.Strings(lines)
		out[k] = strings.Join(lines, "\n")
	}
	return out
}

// recordEntries counts the record fields, in every slot's record, that
// contain part.
func recordEntries(t *testing.T, ctx context.Context, cc *redis.ClusterClient, part string) int {
	t.Helper()
	n := 0
	err := redisconn.ForEachMaster(ctx, cc, func(ctx context.Context, node redis.UniversalClient) error {
		keys, err := node.Keys(ctx, keyspace.RecordPrefix+"*").Result()
		if err != nil {
			return err
		}
		for _, k := range keys {
			for f := range node.HGetAll(ctx, k).Val() {
				if strings.Contains(f, part) {
					n++
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkRecords checks that the records hold exactly pairs' entries under
// prefix: one per slot each pair's effects touch.
func checkRecords(t *testing.T, ctx context.Context, cc *redis.ClusterClient, prefix string, pairs map[string]int, when string) {
	t.Helper()
	want := 0
	for _, n := range pairs {
		want += n
	}
	if got := recordEntries(t, ctx, cc, " "+prefix); got != want {
		t.Errorf("%s: %d record entries under %s, want %d (one per pair and slot)", when, got, prefix, want)
	}
}

// deadLettersOf counts the dead letters of orders under prefix.
func deadLettersOf(t *testing.T, ctx context.Context, cc *redis.ClusterClient, prefix string) int {
	t.Helper()
	msgs, err := cc.XRange(ctx, testDL, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if id, _ := m.Values["order_id"].(string); strings.HasPrefix(id, prefix) {
			n++
		}
	}
	return n
}
