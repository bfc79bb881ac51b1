package apply_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/keyspace"
)

// markersOf returns the eventhost fields of the order hash at key, each
// time in it blanked: "T" for a list's, "µs" for a field's.
func markersOf(t *testing.T, ctx context.Context, rdb redis.Cmdable, key string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for f, v := range rdb.HGetAll(ctx, key).Val() {
		switch {
		case f == keyspace.DoneListField:
			_, names, _ := strings.Cut(v, " ")
			out[f] = "T " + names
		case strings.HasPrefix(f, keyspace.MarkerPrefix):
			out[f] = "µs"
		}
	}
	return out
}

// TestApplyDoneListForms: a batch marks each order's plugins done with one
// list when it can, and with a field each when the order holds a list
// already (a list is written once), or when the plugins' names make no
// list; an order marked with a field each that holds no list gets one
// naming no plugin (the time alone), so that every marked order holds a
// list. Order 1 was marked done for plugin "a" by an earlier run; the batch
// applies plugin "b" (or a long-named plugin) to orders 1 and 2, with the
// lean check (reads: order 1, whose list is there), with every order read
// (a user without HSETNX), and for names that make no list (read too).
func TestApplyDoneListForms(t *testing.T) {
	long := strings.Repeat("b", keyspace.DoneListMax)
	for _, tc := range []struct {
		name   string
		plugin string
		deny   string // an ACL rule for the host's user
		reads  int
		want1  map[string]string
		want2  map[string]string
	}{
		{name: "lean", plugin: "b", reads: 1,
			want1: map[string]string{keyspace.DoneListField: "T a", keyspace.DoneField("b"): "µs"},
			want2: map[string]string{keyspace.DoneListField: "T b"}},
		{name: "no HSETNX: read", plugin: "b", deny: "-hsetnx", reads: 2,
			want1: map[string]string{keyspace.DoneListField: "T a", keyspace.DoneField("b"): "µs"},
			want2: map[string]string{keyspace.DoneListField: "T b"}},
		{name: "no list fits", plugin: long, reads: 2,
			want1: map[string]string{keyspace.DoneListField: "T a", keyspace.DoneField(long): "µs"},
			want2: map[string]string{keyspace.DoneListField: "T ", keyspace.DoneField(long): "µs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, admin, a := setup(t, 0)
			if tc.deny != "" {
				if err := admin.Do(ctx, "ACL", "SETUSER", "eh", "on", ">pw", "~*", "&*", "+@all", tc.deny).Err(); err != nil {
					t.Fatal(err)
				}
				rdb := redis.NewClient(&redis.Options{Addr: admin.Options().Addr, Username: "eh", Password: "pw"})
				t.Cleanup(func() { rdb.Close() })
				a = apply.New(rdb, dlStream)
			}
			for _, id := range []string{"1", "2"} {
				createOrder(t, ctx, admin, id)
			}
			if _, err := apply.New(admin, dlStream).Apply(ctx, apply.Batch{Writes: []apply.Write{write("1", "a", eff("SADD", "by-a", "1"))}}); err != nil {
				t.Fatal(err)
			}
			var writes []apply.Write
			for _, id := range []string{"1", "2"} {
				writes = append(writes, write(id, tc.plugin, eff("HINCRBY", "times", id, "1")))
			}
			statuses, reads := hmgets(t, ctx, admin, a, apply.Batch{Writes: writes})
			if want := []apply.Status{apply.Applied, apply.Applied}; !reflect.DeepEqual(statuses, want) {
				t.Fatalf("statuses %v, want %v", statuses, want)
			}
			if reads != tc.reads {
				t.Errorf("%d orders read, want %d", reads, tc.reads)
			}
			if got := markersOf(t, ctx, admin, orderKey("1")); !reflect.DeepEqual(got, tc.want1) {
				t.Errorf("order 1's markers %v, want %v", got, tc.want1)
			}
			if got := markersOf(t, ctx, admin, orderKey("2")); !reflect.DeepEqual(got, tc.want2) {
				t.Errorf("order 2's markers %v, want %v", got, tc.want2)
			}
		})
	}
}

// TestApplyTakesBackBothForms: an order hash found replaced after the load
// (the lean check's HSETNX fails on it) makes the script take back the
// markers it set before it, whichever form they took: order 1's field
// (it holds a list from run 1, which stays), order 0's list, order L's
// field and list of none (its plugin's name makes no list). The batch is
// redone without that order, so each order is counted once and marked as
// if the order had never been there.
func TestApplyTakesBackBothForms(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	long := strings.Repeat("l", keyspace.DoneListMax)
	for _, id := range []string{"0", "1", "L", "2", "3"} {
		createOrder(t, ctx, rdb, id)
	}
	if _, err := a.Apply(ctx, apply.Batch{Writes: []apply.Write{write("1", "a", eff("SADD", "by-a", "1"))}}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, orderKey("2")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, orderKey("2"), "not an order", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var writes []apply.Write
	for _, id := range []string{"0", "1", "L", "2", "3"} {
		plugin := "b"
		if id == "L" {
			plugin = long
		}
		writes = append(writes, write(id, plugin, eff("HINCRBY", "times", id, "1")))
	}
	statuses, reads := hmgets(t, ctx, rdb, a, apply.Batch{Writes: writes})
	if want := []apply.Status{apply.Applied, apply.Applied, apply.Applied, apply.Vanished, apply.Applied}; !reflect.DeepEqual(statuses, want) {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
	// First run: L (its markers are fields), 1 (its list is there), then
	// every order once 2's HSETNX failed; the run again: L and 1.
	if reads != 9 {
		t.Errorf("%d orders read, want 9", reads)
	}
	if got, want := rdb.HGetAll(ctx, "times").Val(), map[string]string{"0": "1", "1": "1", "L": "1", "3": "1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("times = %v, want %v", got, want)
	}
	wantMarkers := map[string]map[string]string{
		"0": {keyspace.DoneListField: "T b"},
		"1": {keyspace.DoneListField: "T a", keyspace.DoneField("b"): "µs"},
		"L": {keyspace.DoneListField: "T ", keyspace.DoneField(long): "µs"},
		"3": {keyspace.DoneListField: "T b"},
	}
	for id, want := range wantMarkers {
		if got := markersOf(t, ctx, rdb, orderKey(id)); !reflect.DeepEqual(got, want) {
			t.Errorf("order %s's markers %v, want %v", id, got, want)
		}
	}
	if got := rdb.Get(ctx, orderKey("2")).Val(); got != "not an order" {
		t.Errorf("order 2's key = %q, want it left as it was", got)
	}
	// The same batch again finds every pair done, by either form.
	statuses, _ = hmgets(t, ctx, rdb, a, apply.Batch{Writes: writes})
	if want := []apply.Status{apply.AlreadyDone, apply.AlreadyDone, apply.AlreadyDone, apply.Vanished, apply.AlreadyDone}; !reflect.DeepEqual(statuses, want) {
		t.Fatalf("second apply: statuses %v, want %v", statuses, want)
	}
}
