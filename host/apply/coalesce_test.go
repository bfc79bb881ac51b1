package apply_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/sdk"
)

// Coalescing must leave every key exactly as applying the writes one
// command at a time would: the same random batches go through the Applier
// into database 0 and through plain commands, in order, into database 1.
// Floats are multiples of 1/4, so the one-by-one sums are exact too.
func TestApplyCoalescedEqualsOneByOne(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	srv := redistest.Start(t)
	ctx := t.Context()
	coalesced := srv.Client()
	oneByOne := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: 1})
	defer oneByOne.Close()
	a := apply.New(coalesced, dlStream)
	rng := rand.New(rand.NewPCG(7, 11))
	for round := range 30 {
		var writes []apply.Write
		for o := range 40 {
			id := fmt.Sprintf("%d-%d", round, o)
			createOrder(t, ctx, coalesced, id)
			for _, plugin := range []string{"a", "b"} {
				if rng.IntN(4) == 0 {
					continue
				}
				var fx []sdk.Effect
				for range 1 + rng.IntN(4) {
					fx = append(fx, randomEffect(rng, plugin))
				}
				writes = append(writes, write(id, plugin, fx...))
			}
		}
		applyEqualsOneByOne(t, ctx, a, coalesced, oneByOne, writes, round)
	}
}

// applyEqualsOneByOne applies writes through a (on coalesced) and the same
// effects one command at a time on oneByOne, and fails unless every write
// was applied and both hold the same keys and values.
func applyEqualsOneByOne(t *testing.T, ctx context.Context, a *apply.Applier, coalesced, oneByOne *redis.Client, writes []apply.Write, round int) {
	t.Helper()
	res, err := a.Apply(ctx, apply.Batch{Writes: writes})
	if err != nil {
		t.Fatalf("round %d: Apply: %v", round, err)
	}
	for i, st := range res.Statuses {
		if st != apply.Applied {
			t.Fatalf("round %d: write %d %+v: %v (%s)", round, i, writes[i], st, res.Reasons[i])
		}
	}
	for _, w := range writes {
		for _, e := range w.Effects {
			args := []any{e.Command, e.Key}
			for _, s := range e.Args {
				args = append(args, s)
			}
			if err := oneByOne.Do(ctx, args...).Err(); err != nil && err != redis.Nil {
				t.Fatalf("round %d: %v: %v", round, args, err)
			}
		}
	}
	got, want := state(t, ctx, coalesced), state(t, ctx, oneByOne)
	if !reflect.DeepEqual(got, want) {
		for k := range want {
			if !reflect.DeepEqual(got[k], want[k]) {
				t.Errorf("round %d: key %s:\n coalesced  %#v\n one by one %#v", round, k, got[k], want[k])
			}
		}
		t.FailNow()
	}
}

// randomEffect draws an effect of plugin's own keys (two plugins never
// share a key here, as policy keeps them apart).
func randomEffect(rng *rand.Rand, plugin string) sdk.Effect {
	k := func(name string) string { return plugin + ":" + name }
	n := func(lo, hi int) string { return strconv.Itoa(lo + rng.IntN(hi-lo+1)) }
	quarter := func() string { return strconv.FormatFloat(float64(rng.IntN(400)-100)/4, 'f', -1, 64) }
	switch rng.IntN(15) {
	case 0:
		return eff("HINCRBY", k("h"), "f"+n(0, 3), n(-5, 20))
	case 1:
		// Sets a number, so increments after it still apply.
		return eff("HSET", k("h"), "f"+n(0, 3), n(0, 9), "g"+n(0, 3), "v"+n(0, 9))
	case 2:
		return eff("HINCRBYFLOAT", k("money"), "f"+n(0, 2), quarter())
	case 3:
		return eff("SADD", k("s"+n(0, 2)), "m"+n(0, 9), "m"+n(0, 9))
	case 4:
		return eff("ZINCRBY", k("z"), quarter(), "m"+n(0, 3))
	case 5:
		return eff("INCRBY", k("c"), n(-100, 100))
	case 6:
		return eff("PFADD", k("hll"), "x"+n(0, 50))
	case 7:
		return eff("XADD", k("x"), "*", "f", n(0, 9))
	case 8, 12, 13: // counters that never overlap: coalesced per mode
		typ := []string{"u8", "i8", "u4"}[rng.IntN(3)]
		mode := []string{"WRAP", "SAT", "FAIL"}[rng.IntN(3)]
		return eff("BITFIELD", k("bf-"+mode+"-"+typ), "OVERFLOW", mode, "INCRBY", typ, "#"+n(0, 1), n(-300, 300))
	case 14: // wide counters, increments near the int64 range
		typ := []string{"u63", "i64"}[rng.IntN(2)]
		mode := []string{"WRAP", "SAT", "FAIL"}[rng.IntN(3)]
		big := strconv.FormatInt(rng.Int64N(1<<62)*int64(1-2*rng.IntN(2)), 10)
		return eff("BITFIELD", k("wide-"+mode+"-"+typ), "OVERFLOW", mode, "INCRBY", typ, "0", big)
	case 9: // the tutorial's form
		return eff("BITFIELD", k("hist"), "INCRBY", "u8", strconv.Itoa(8*(1+rng.IntN(24))), n(1, 200))
	case 10: // overlapping counters and mixed modes: kept in order
		mode := []string{"WRAP", "SAT", "FAIL"}[rng.IntN(3)]
		return eff("BITFIELD", k("overlap"), "OVERFLOW", mode, "INCRBY", []string{"u8", "u4", "i16"}[rng.IntN(3)], n(0, 12), n(-40, 40))
	default: // SET among increments: kept in order
		if rng.IntN(2) == 0 {
			return eff("BITFIELD", k("withset"), "SET", "u8", "#"+n(0, 2), n(0, 255))
		}
		return eff("BITFIELD", k("withset"), "INCRBY", "u8", "#"+n(0, 2), n(0, 255))
	}
}

// state reads every key but the order hashes, dead letters and the
// applies' count and ring (their tokens differ by design), in a form
// that compares across databases: stream ids and HyperLogLog encodings
// differ by design, their contents must not.
func state(t *testing.T, ctx context.Context, rdb *redis.Client) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, key := range rdb.Keys(ctx, "*").Val() {
		if key == dlStream || len(key) > 22 && key[:22] == "purchase_order_details" {
			continue
		}
		switch typ := rdb.Type(ctx, key).Val(); typ {
		case "hash":
			out[key] = rdb.HGetAll(ctx, key).Val()
		case "set":
			m := rdb.SMembers(ctx, key).Val()
			sort.Strings(m)
			out[key] = m
		case "zset":
			out[key] = rdb.ZRangeWithScores(ctx, key, 0, -1).Val()
		case "stream":
			var vals []map[string]any
			for _, e := range rdb.XRange(ctx, key, "-", "+").Val() {
				vals = append(vals, e.Values)
			}
			out[key] = vals
		case "string":
			if len(key) > 4 && key[len(key)-4:] == ":hll" {
				out[key] = rdb.PFCount(ctx, key).Val()
				continue
			}
			out[key] = rdb.Get(ctx, key).Val()
		default:
			t.Fatalf("key %s has type %s", key, typ)
		}
	}
	return out
}
