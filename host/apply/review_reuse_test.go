package apply_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime/debug"
	"sort"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/sdk"
)

// TestReviewPlanReuseAcrossShapes applies batches of very different shapes
// one after the other through one Applier, whose plans are reused from
// batch to batch: many plugins (more marker sets than a scan serves, found
// by map) then one, keys with many fields and members (found by map) then
// few, a batch split into several script runs (MaxArgs), and a script
// Redis lost between batches (NOSCRIPT, then EVAL of the same reused
// command). Whatever a reused plan kept from an earlier batch must not
// show: every key ends as applying the writes one command at a time
// leaves it (database 1), and every order hash holds the done markers of
// exactly the plugins that wrote it. It passes on the reviewed code; it
// guards plan.reset: dropping the reset of names, setIndex, orders, accs
// or args makes it fail (seen), which no other test did while a GC could
// empty the pool between batches.
func TestReviewPlanReuseAcrossShapes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	srv := redistest.Start(t)
	ctx := t.Context()
	coalesced := srv.Client()
	oneByOne := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: 1})
	defer oneByOne.Close()
	a := apply.New(coalesced, dlStream)
	// No collection between batches: one would empty the Applier's pool
	// of plans (a sync.Pool), and each batch would get a new plan.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	rng := rand.New(rand.NewPCG(2026, 11))
	for round := range 40 {
		plugins := 1 + rng.IntN(7) // up to 127 marker sets
		if round%2 == 1 {
			plugins = 1 // a small batch right after a large one
		}
		norders := 1 + rng.IntN(80)
		wide := round%3 == 0 // keys with many fields and members
		a.MaxArgs = 200_000
		if round%5 == 4 {
			a.MaxArgs = 40 + rng.IntN(200) // several script runs
		}
		if round%7 == 6 {
			if err := coalesced.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		var writes []apply.Write
		for o := range norders {
			id := fmt.Sprintf("r%d-%d", round, o)
			createOrder(t, ctx, coalesced, id)
			for p := range plugins {
				if plugins > 1 && rng.IntN(3) == 0 {
					continue
				}
				plugin := "p" + strconv.Itoa(p)
				var fx []sdk.Effect
				for range 1 + rng.IntN(5) {
					fx = append(fx, shapeEffect(rng, plugin, wide))
				}
				writes = append(writes, write(id, plugin, fx...))
			}
		}
		applyEqualsOneByOne(t, ctx, a, coalesced, oneByOne, writes, round)
		// Each order hash holds the done markers of exactly the plugins
		// that wrote it: a marker set looked up in what a reused plan
		// kept from an earlier batch would mark other plugins done.
		wantMarkers := map[string][]string{}
		for _, w := range writes {
			wantMarkers[w.OrderKey] = append(wantMarkers[w.OrderKey], w.Plugin)
		}
		for key, markers := range wantMarkers {
			have := donePlugins(t, ctx, coalesced, key)
			sort.Strings(markers)
			if !reflect.DeepEqual(have, markers) {
				t.Fatalf("round %d: order hash %s holds the done markers %v, want %v", round, key, have, markers)
			}
		}
	}
}

// shapeEffect draws an effect on keys every round shares; wide draws from
// many fields and members, so that their keys pass the scan's limits.
func shapeEffect(rng *rand.Rand, plugin string, wide bool) sdk.Effect {
	k := func(name string) string { return plugin + ":" + name }
	spread := 4
	if wide {
		spread = 60
	}
	f := func(prefix string) string { return prefix + strconv.Itoa(rng.IntN(spread)) }
	n := func(lo, hi int) string { return strconv.Itoa(lo + rng.IntN(hi-lo+1)) }
	quarter := func() string { return strconv.FormatFloat(float64(rng.IntN(400)-100)/4, 'f', -1, 64) }
	switch rng.IntN(8) {
	case 0:
		return eff("HINCRBY", k("h"), f("f"), n(-5, 20))
	case 1:
		return eff("HSET", k("h"), f("g"), n(0, 9), f("g"), n(0, 9))
	case 2:
		return eff("HINCRBYFLOAT", k("money"), f("f"), quarter())
	case 3:
		return eff("SADD", k("s"), f("m"), f("m"), f("m"))
	case 4:
		return eff("ZINCRBY", k("z"), quarter(), f("m"))
	case 5:
		return eff("INCRBY", k("c"), n(-100, 100))
	case 6:
		return eff("XADD", k("x"), "*", "f", f("v"))
	default:
		return eff("BITFIELD", k("hist"), "INCRBY", "u8", "#"+strconv.Itoa(rng.IntN(spread)), n(1, 200))
	}
}
