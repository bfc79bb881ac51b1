package catchup_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/catchup"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
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
	order(t, ctx, rdb, "done-a", keyspace.DoneField("a"))
	order(t, ctx, rdb, "dead-b", keyspace.DeadField("b"))
	order(t, ctx, rdb, "history-a", keyspace.HistoryField("a"))
	order(t, ctx, rdb, "all-done", keyspace.DoneField("a"), keyspace.DoneField("b"))
	order(t, ctx, rdb, "bad", keyspace.DeadOrderField)
	rdb.Set(ctx, prefix+"a-string", "x", 0)
	rdb.HSet(ctx, prefix+"only-markers", keyspace.DoneField("zz"), "1") // not an order: no order field
	// Plugins marked done with one list (keyspace.DoneList), alone or
	// with a field each; a list names whole names only, after its time.
	list := func(id, value string, markers ...string) {
		order(t, ctx, rdb, id, markers...)
		rdb.HSet(ctx, prefix+id, keyspace.DoneListField, value)
	}
	list("list-ab", "1700000000000 a b")
	list("list-b", "1700000000000 b")
	list("list-a-field-b", "1700000000000 a", keyspace.DoneField("b"))
	list("list-names-ab", "1700000000000 ab")
	list("list-time-a", "a b") // the first word is the time, never a name

	s := catchup.NewScanner(rdb, prefix)
	s.Count = 2 // several SCAN round trips
	got, st := scan(t, ctx, s, catchup.Want{Plugin: "a"}, catchup.Want{Plugin: "b"})
	want := map[string][]string{
		"fresh":         {"a", "b"},
		"done-a":        {"b"},
		"dead-b":        {"a"},
		"history-a":     {"b"},
		"list-b":        {"a"},
		"list-names-ab": {"a", "b"},
		"list-time-a":   {"a"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unfinished = %v, want %v", got, want)
	}
	if st.Keys != 13 || st.Unfinished != 7 {
		t.Errorf("stats = %+v, want 13 keys seen and 7 unfinished", st)
	}

	got, _ = scan(t, ctx, s, catchup.Want{Plugin: "a", History: true})
	want = map[string][]string{"fresh": {"a"}, "dead-b": {"a"}, "history-a": {"a"}, "list-b": {"a"}, "list-names-ab": {"a"}, "list-time-a": {"a"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("backfill scan for a = %v, want %v", got, want)
	}
}

// A scan whose reads Redis refuses (an ACL user without HGET or HMGET)
// fails with Redis' reason, rather than pass over every order as done.
func TestScanFailsWhenItMayNotRead(t *testing.T) {
	ctx, admin := start(t)
	order(t, ctx, admin, "fresh")
	order(t, ctx, admin, "done-a", keyspace.DoneField("a"))
	for _, deny := range []string{"-hget", "-hmget"} {
		t.Run(deny, func(t *testing.T) {
			user := "scan" + deny
			if err := admin.Do(ctx, "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", deny).Err(); err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(&redis.Options{Addr: admin.Options().Addr, Username: user, Password: "pw"})
			t.Cleanup(func() { rdb.Close() })
			_, err := catchup.NewScanner(rdb, prefix).Scan(ctx, []catchup.Want{{Plugin: "a"}}, func([]catchup.Unfinished) error { return nil })
			if err == nil || !strings.Contains(err.Error(), "NOPERM") {
				t.Fatalf("Scan = %v, want Redis' NOPERM", err)
			}
		})
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
	first, err := reg.Enable(ctx, "p")
	if err != nil || !first.Fresh {
		t.Fatalf("first Enable = %+v, %v; want fresh", first, err)
	}
	order(t, ctx, rdb, "later")
	if again, err := reg.Enable(ctx, "p"); err != nil || again != (catchup.Registration{Token: first.Token}) {
		t.Fatalf("second Enable = %+v, %v; want the same token, not fresh", again, err)
	}
	got, _ := scan(t, ctx, s, catchup.Want{Plugin: "p", Token: first.Token})
	if !reflect.DeepEqual(got, map[string][]string{"later": {"p"}}) {
		t.Errorf("unfinished after registration = %v, want only the order stored after it", got)
	}
	if typ := rdb.Type(ctx, prefix+"a-string").Val(); typ != "string" {
		t.Errorf("marking history turned a string key into a %s", typ)
	}
	when, err := rdb.HGet(ctx, keyspace.RegistryKey, "p").Result()
	if err != nil || when != first.Token {
		t.Errorf("registry entry for p = %q, %v; want the token %q", when, err, first.Token)
	}
	if v := rdb.HGet(ctx, prefix+"7", keyspace.HistoryField("p")).Val(); v != first.Token {
		t.Errorf("history marker = %q, want the token %q", v, first.Token)
	}
}

// A run hands every unfinished order on once, with its plugins, on the
// runner's channel.
func TestRunnerOnce(t *testing.T) {
	ctx, rdb := start(t)
	s := catchup.NewScanner(rdb, prefix)
	r := catchup.NewRunner(s, catchup.NewRegistry(rdb, s), catchup.NewRoutes([]string{"purchase_orders"}, nil), hclog.NewNullLogger(), metrics.New())
	ab := []catchup.Plugin{{Name: "a", Channels: []string{"purchase_orders"}}, {Name: "b", Channels: []string{"purchase_orders"}}}
	var none []orders.Ref
	emit := func(_ context.Context, ref orders.Ref) error { none = append(none, ref); return nil }
	// Registration first: the orders below are stored after it.
	if err := r.Once(ctx, ab, emit); err != nil {
		t.Fatal(err)
	}
	if len(none) != 0 {
		t.Fatalf("catch-up on an empty database emitted %v", none)
	}
	order(t, ctx, rdb, "1", keyspace.DoneField("a"))
	order(t, ctx, rdb, "2")
	var got []string
	err := r.Once(ctx, ab, func(_ context.Context, ref orders.Ref) error {
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

// A marking interrupted half way (the host died) is never resumed: the
// next Enable registers a new token, so the half-done markers count for
// nothing, and an order stored meanwhile gets no history marker: catch-up
// finds it, and every order stored before (the safe error).
func TestRegistryInterruptedMarkingIsVoid(t *testing.T) {
	ctx, rdb := start(t)
	for i := range 30 {
		order(t, ctx, rdb, fmt.Sprint(i))
	}
	s := catchup.NewScanner(rdb, prefix)
	s.Count = 5
	reg := catchup.NewRegistry(rdb, s)
	dying, die := context.WithCancel(ctx)
	pages := 0
	catchup.SetAfterPage(reg, func() {
		if pages++; pages == 2 {
			die()
		}
	})
	if _, err := reg.Enable(dying, "p"); err == nil {
		t.Fatal("Enable went on after its context ended")
	}
	state := rdb.HGet(ctx, keyspace.RegistryKey, "p").Val()
	marked := 0
	for i := range 30 {
		if rdb.HExists(ctx, prefix+fmt.Sprint(i), keyspace.HistoryField("p")).Val() {
			marked++
		}
	}
	if len(state) < len("marking:") || state[:len("marking:")] != "marking:" || marked == 0 || marked == 30 {
		t.Fatalf("after the interruption: registry %q, %d of 30 marked; want marking:TOKEN and some marked", state, marked)
	}

	order(t, ctx, rdb, "meanwhile") // published while the host was down
	again := catchup.NewRegistry(rdb, s)
	reg2, err := again.Enable(ctx, "p")
	if err != nil || !reg2.Voided || reg2.Fresh || "marking:"+reg2.Token == state {
		t.Fatalf("Enable after the interruption = %+v, %v; want voided with a new token", reg2, err)
	}
	if got := rdb.HGet(ctx, keyspace.RegistryKey, "p").Val(); got != reg2.Token {
		t.Errorf("registry entry = %q, want %q", got, reg2.Token)
	}
	if rdb.HExists(ctx, prefix+"meanwhile", keyspace.HistoryField("p")).Val() {
		t.Error("the order stored after the interrupted marking was marked as history")
	}
	got, st := scan(t, ctx, s, catchup.Want{Plugin: "p", Token: reg2.Token})
	if st.Unfinished != 31 || len(got["meanwhile"]) != 1 {
		t.Errorf("catch-up after the voided marking finds %d orders (meanwhile: %v), want all 31", st.Unfinished, got["meanwhile"])
	}
	if reg3, err := again.Enable(ctx, "p"); err != nil || reg3 != (catchup.Registration{Token: reg2.Token}) {
		t.Errorf("third Enable = %+v, %v; want the voided registration's token", reg3, err)
	}
}

// A history marker counts only with the plugin's token; a backfill counts
// none.
func TestScanHistoryToken(t *testing.T) {
	ctx, rdb := start(t)
	rdb.HSet(ctx, prefix+"old", "ts", "1", "qty", "1", "cost", "1", "event", "e", "who", "w", keyspace.HistoryField("p"), "100")
	rdb.HSet(ctx, prefix+"void", "ts", "1", "qty", "1", "cost", "1", "event", "e", "who", "w", keyspace.HistoryField("p"), "99")
	s := catchup.NewScanner(rdb, prefix)
	for _, tt := range []struct {
		want catchup.Want
		ids  []string
	}{
		{catchup.Want{Plugin: "p", Token: "100"}, []string{"void"}},
		{catchup.Want{Plugin: "p"}, nil},
		{catchup.Want{Plugin: "p", Token: "100", History: true}, []string{"old", "void"}},
	} {
		got, _ := scan(t, ctx, s, tt.want)
		var ids []string
		for id := range got {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		if !reflect.DeepEqual(ids, tt.ids) {
			t.Errorf("%+v: found %v, want %v", tt.want, ids, tt.ids)
		}
	}
}

// With several source channels, an order found by a scan goes only to the
// plugins that may get it: those on every channel when its channel cannot
// be told ("" then, not a made-up one), those on its channel when an id
// prefix tells it. A plugin no scan can serve is left out.
func TestRunnerRespectsChannels(t *testing.T) {
	ctx, rdb := start(t)
	plugins := []catchup.Plugin{{Name: "all", Channels: []string{"a", "b"}}, {Name: "inv", Channels: []string{"b"}}}
	for _, tt := range []struct {
		name     string
		prefixes map[string]string
		want     []string
	}{
		{"no id prefixes", nil, []string{"A-1@:[all]", "B-1@:[all]", "X-1@:[all]"}},
		{"b by id prefix", map[string]string{"b": "B-"}, []string{"A-1@:[all]", "B-1@b:[all inv]", "X-1@:[all]"}},
		{"both by id prefix", map[string]string{"a": "A-", "b": "B-"}, []string{"A-1@a:[all]", "B-1@b:[all inv]", "X-1@:[all]"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			s := catchup.NewScanner(rdb, prefix)
			r := catchup.NewRunner(s, catchup.NewRegistry(rdb, s), catchup.NewRoutes([]string{"a", "b"}, tt.prefixes), hclog.NewNullLogger(), metrics.New())
			none := func(context.Context, orders.Ref) error { return nil }
			if err := r.Once(ctx, plugins, none); err != nil { // registers both
				t.Fatal(err)
			}
			for _, id := range []string{"A-1", "B-1", "X-1"} {
				order(t, ctx, rdb, id)
			}
			var got []string
			err := r.Once(ctx, plugins, func(_ context.Context, ref orders.Ref) error {
				got = append(got, fmt.Sprintf("%s@%s:%v", ref.ID, ref.Channel, ref.Only))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("emitted %v, want %v", got, tt.want)
			}
		})
	}
}
