package apply_test

import (
	"reflect"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/keyspace"
)

// Review of the list of done plugins (bf0ac9f), adversarial.

// TestReviewDoneListNameWithASpace: config allows a plugin name with a
// space (config.go: "non-empty and hold no / or NUL"), and DoneList keeps
// such a name out of a list. Plugins "x" and "y" are applied to order 1 in
// one batch: its list is "<ms> x y". Plugin "x y" has not been applied to
// order 1 (it failed on it, or was added later), and the Go readers say so
// (keyspace.Done, so the loader dispatches it). The script, which finds a
// name in a list by searching " <name> " in "<list> ", finds " x y " in
// "<ms> x y " and calls the pair done wherever it reads the order: the
// pair is never counted. (Before every marked order held a list, where
// the script did not read the order, the lean check, it counted it: the
// two paths disagreed. Both are tried.)
func TestReviewDoneListNameWithASpace(t *testing.T) {
	eachCheckPath(t, func(t *testing.T, newApplier func(*redis.Client) *apply.Applier) {
		ctx, rdb, a := setup(t, 0)
		createOrder(t, ctx, rdb, "1")
		if st := applyTimes(t, ctx, a, apply.Batch{Writes: []apply.Write{
			write("1", "x", eff("SADD", "by-x", "1")),
			write("1", "y", eff("SADD", "by-y", "1")),
		}}); !reflect.DeepEqual(st, []apply.Status{apply.Applied, apply.Applied}) {
			t.Fatalf("first batch: %v", st)
		}
		fields := rdb.HGetAll(ctx, orderKey("1")).Val()
		if got := markersOf(t, ctx, rdb, orderKey("1")); !reflect.DeepEqual(got, map[string]string{keyspace.DoneListField: "T x y"}) {
			t.Fatalf("order 1's markers %v, want the list of x and y", got)
		}
		if keyspace.Done(fields, "x y") {
			t.Fatal(`keyspace.Done says "x y" is done: the Go readers would not dispatch it`)
		}
		w := write("1", "x y", eff("HINCRBY", "times", "1", "1"))
		st := applyTimes(t, ctx, newApplier(rdb), apply.Batch{Writes: []apply.Write{w}})
		if !reflect.DeepEqual(st, []apply.Status{apply.Applied}) {
			t.Errorf(`plugin "x y" on order 1: %v, want Applied (the list names x and y, not "x y")`, st)
		}
		wantCountedOnce(t, ctx, rdb, "1")
		want := map[string]string{keyspace.DoneListField: "T x y", keyspace.DoneField("x y"): "µs"}
		if got := markersOf(t, ctx, rdb, orderKey("1")); !reflect.DeepEqual(got, want) {
			t.Errorf("order 1's markers %v, want %v", got, want)
		}
	})
}
