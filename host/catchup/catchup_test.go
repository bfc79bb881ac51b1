package catchup_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/catchup"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
)

const prefix = "purchase_order_details:"

func start(t *testing.T) (context.Context, *redis.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	return t.Context(), redistest.Start(t).Client()
}

func order(t *testing.T, ctx context.Context, rdb *redis.Client, id string, markers ...string) {
	t.Helper()
	fields := []any{"ts", "1627000000", "qty", "1", "cost", "1.00", "event", "e", "who", "w"}
	for _, m := range markers {
		fields = append(fields, m, "1")
	}
	if err := rdb.HSet(ctx, prefix+id, fields...).Err(); err != nil {
		t.Fatal(err)
	}
}

func scan(t *testing.T, ctx context.Context, s *catchup.Scanner, wants ...catchup.Want) (map[string][]string, catchup.Stats) {
	t.Helper()
	got := map[string][]string{}
	st, err := s.Scan(ctx, wants, func(found []catchup.Unfinished) error {
		for _, u := range found {
			got[u.ID] = u.Plugins
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, st
}

// Each marker keeps exactly its plugin off an order; history only counts
// for a backfill; keys that are not order hashes are passed over.
func TestScanFindsWhatEachPluginHasNotFinished(t *testing.T) {
	ctx, rdb := start(t)
	order(t, ctx, rdb, "fresh")
	order(t, ctx, rdb, "done-a", orders.DoneField("a"))
	order(t, ctx, rdb, "dead-b", orders.DeadField("b"))
	order(t, ctx, rdb, "history-a", orders.HistoryField("a"))
	order(t, ctx, rdb, "all-done", orders.DoneField("a"), orders.DoneField("b"))
	order(t, ctx, rdb, "bad", orders.DeadOrderField)
	rdb.Set(ctx, prefix+"a-string", "x", 0)
	rdb.HSet(ctx, prefix+"only-markers", orders.DoneField("zz"), "1") // not an order: no order field

	s := catchup.NewScanner(rdb, prefix)
	s.Count = 2 // several SCAN round trips
	got, st := scan(t, ctx, s, catchup.Want{Plugin: "a"}, catchup.Want{Plugin: "b"})
	want := map[string][]string{
		"fresh":     {"a", "b"},
		"done-a":    {"b"},
		"dead-b":    {"a"},
		"history-a": {"b"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unfinished = %v, want %v", got, want)
	}
	if st.Keys != 8 || st.Unfinished != 4 {
		t.Errorf("stats = %+v, want 8 keys seen and 4 unfinished", st)
	}

	got, _ = scan(t, ctx, s, catchup.Want{Plugin: "a", History: true})
	want = map[string][]string{"fresh": {"a"}, "dead-b": {"a"}, "history-a": {"a"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("backfill scan for a = %v, want %v", got, want)
	}
}

// The first Enable marks every stored order as history for the plugin (and
// creates no hash); later ones change nothing.
func TestRegistryMarksHistoryOnce(t *testing.T) {
	ctx, rdb := start(t)
	for i := range 25 {
		order(t, ctx, rdb, fmt.Sprint(i))
	}
	rdb.Set(ctx, prefix+"a-string", "x", 0)
	s := catchup.NewScanner(rdb, prefix)
	s.Count = 10
	reg := catchup.NewRegistry(rdb, s)
	fresh, err := reg.Enable(ctx, "p")
	if err != nil || !fresh {
		t.Fatalf("first Enable = %v, %v; want fresh", fresh, err)
	}
	order(t, ctx, rdb, "later")
	if fresh, err := reg.Enable(ctx, "p"); err != nil || fresh {
		t.Fatalf("second Enable = %v, %v; want not fresh", fresh, err)
	}
	got, _ := scan(t, ctx, s, catchup.Want{Plugin: "p"})
	if !reflect.DeepEqual(got, map[string][]string{"later": {"p"}}) {
		t.Errorf("unfinished after registration = %v, want only the order stored after it", got)
	}
	if typ := rdb.Type(ctx, prefix+"a-string").Val(); typ != "string" {
		t.Errorf("marking history turned a string key into a %s", typ)
	}
	when, err := rdb.HGet(ctx, catchup.RegistryKey, "p").Int64()
	if err != nil || when <= 0 {
		t.Errorf("registry entry for p = %v, %v; want a time in ms", when, err)
	}
}

// A run hands every unfinished order on once, with its plugins, on the
// runner's channel.
func TestRunnerOnce(t *testing.T) {
	ctx, rdb := start(t)
	s := catchup.NewScanner(rdb, prefix)
	r := catchup.NewRunner(s, catchup.NewRegistry(rdb, s), "purchase_orders", hclog.NewNullLogger(), metrics.New())
	var none []orders.Ref
	emit := func(_ context.Context, ref orders.Ref) error { none = append(none, ref); return nil }
	// Registration first: the orders below are stored after it.
	if err := r.Once(ctx, []string{"a", "b"}, emit); err != nil {
		t.Fatal(err)
	}
	if len(none) != 0 {
		t.Fatalf("catch-up on an empty database emitted %v", none)
	}
	order(t, ctx, rdb, "1", orders.DoneField("a"))
	order(t, ctx, rdb, "2")
	var got []string
	err := r.Once(ctx, []string{"a", "b"}, func(_ context.Context, ref orders.Ref) error {
		got = append(got, fmt.Sprintf("%s@%s:%v", ref.ID, ref.Channel, ref.Only))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if want := []string{"1@purchase_orders:[b]", "2@purchase_orders:[a b]"}; !reflect.DeepEqual(got, want) {
		t.Errorf("emitted %v, want %v", got, want)
	}
}
