package apply_test

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/internal/redistest"
)

// TestApplyChecksSetTypesInBulk: the types of a batch's set and sorted-set
// keys are checked by one SINTERCARD and one ZINTERCARD, not a TYPE per key;
// a key of another type among them, or an ACL user who may not run those
// commands, falls back to TYPE per key, with the same outcome.
func TestApplyChecksSetTypesInBulk(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	for _, tc := range []struct {
		name string
		acl  string // extra rules of the applier's ACL user
		bulk bool   // whether the bulk commands can run
	}{
		{name: "documented acl", acl: "+sintercard +zintercard", bulk: true},
		{name: "acl without the bulk commands", acl: "-sintercard -zintercard", bulk: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			srv := redistest.Start(t)
			admin := srv.Client()
			rules := append([]any{"ACL", "SETUSER", "eh", "on", ">pw", "~*", "&*", "+@all"}, toAnys(strings.Fields(tc.acl))...)
			if err := admin.Do(ctx, rules...).Err(); err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "eh", Password: "pw"})
			t.Cleanup(func() { rdb.Close() })
			a := apply.New(rdb, dlStream)

			// A clean batch: 20 orders, each with a set of its own, two
			// shared sets, a sorted set each and one hash.
			var writes []apply.Write
			for i := range 20 {
				id := strconv.Itoa(i)
				createOrder(t, ctx, admin, id)
				writes = append(writes,
					write(id, "invoices", eff("SADD", "invoices:"+id, id)),
					write(id, "summary", eff("SADD", "sales:"+strconv.Itoa(i%2), id), eff("HINCRBY", "sales_summary", "n", "1"),
						eff("ZINCRBY", "top:"+id, "1", "ann")))
			}
			if err := admin.ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			res, err := a.Apply(ctx, apply.Batch{Writes: writes})
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range res.Statuses {
				if s != apply.Applied {
					t.Fatalf("write %d: status %d, want applied", i, s)
				}
			}
			calls := commandCalls(t, ctx, admin)
			// TYPE runs for the dead-letter stream and the hash; 22 sets
			// and 20 sorted sets take one bulk call each, or a TYPE each.
			want := map[string]int{"type": 2, "sintercard": 1, "zintercard": 1}
			if !tc.bulk {
				want = map[string]int{"type": 2 + 22 + 20, "sintercard": 0, "zintercard": 0}
			}
			got := map[string]int{"type": calls["type"], "sintercard": calls["sintercard"], "zintercard": calls["zintercard"]}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("calls: %v, want %v", got, want)
			}
			// Asking for a command the user may not run fills the ACL log;
			// the script asks acl_check_cmd first.
			if log := admin.Do(ctx, "ACL", "LOG").Val(); log != nil && len(log.([]any)) > 0 {
				t.Errorf("the ACL log has %d entries: %v", len(log.([]any)), log)
			}
			if n := admin.SCard(ctx, "sales:0").Val() + admin.SCard(ctx, "sales:1").Val(); n != 20 {
				t.Errorf("sales sets hold %d members, want 20", n)
			}
			if v := admin.HGet(ctx, "sales_summary", "n").Val(); v != "20" {
				t.Errorf("sales_summary n = %q, want 20", v)
			}

			// A set key and a sorted-set key holding strings: only their
			// writes are refused, found by the TYPE fallback.
			createOrder(t, ctx, admin, "x")
			createOrder(t, ctx, admin, "y")
			admin.Set(ctx, "invoices:bad", "text", 0)
			admin.Set(ctx, "top:bad", "text", 0)
			res, err = a.Apply(ctx, apply.Batch{Writes: []apply.Write{
				write("x", "invoices", eff("SADD", "invoices:bad", "x")),
				write("x", "summary", eff("SADD", "sales:0", "x")),
				write("y", "invoices", eff("SADD", "invoices:y", "y")),
				write("y", "summary", eff("ZINCRBY", "top:bad", "1", "y")),
			}})
			if err != nil {
				t.Fatal(err)
			}
			wantStatus := []apply.Status{apply.Refused, apply.Applied, apply.Applied, apply.Refused}
			if !reflect.DeepEqual(res.Statuses, wantStatus) {
				t.Errorf("statuses %v, want %v (reasons %v)", res.Statuses, wantStatus, res.Reasons)
			}
			if got := res.Reasons[3]; got != "refused effect: key top:bad holds a string, but its effects need a zset" {
				t.Errorf("reason: %q", got)
			}
			if !admin.SIsMember(ctx, "sales:0", "x").Val() || !admin.SIsMember(ctx, "invoices:y", "y").Val() {
				t.Errorf("the writes beside the refused ones did not land")
			}
			if admin.Get(ctx, "invoices:bad").Val() != "text" || admin.Get(ctx, "top:bad").Val() != "text" {
				t.Errorf("a key of another type was changed")
			}
		})
	}
}

func toAnys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// commandCalls returns INFO commandstats' calls per command.
func commandCalls(t *testing.T, ctx context.Context, rdb *redis.Client) map[string]int {
	t.Helper()
	stats, err := redistest.CommandStats(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for name, st := range stats {
		out[name] = int(st.Calls)
	}
	return out
}

// TestApplyChecksSetTypesPastAThousandKeys: the bulk type check passes
// KEYS to SINTERCARD 1,000 at a time; a set key of another type past the
// first thousand is found too, and only its write is refused.
func TestApplyChecksSetTypesPastAThousandKeys(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	const n = 1200
	pipe := rdb.Pipeline()
	var writes []apply.Write
	for i := range n {
		id := strconv.Itoa(i)
		pipe.HSet(ctx, orderKey(id), "ts", "1700000000", "qty", "3", "cost", "12.5", "event", "rock", "who", "ann")
		writes = append(writes, write(id, "invoices", eff("SADD", "invoices:"+id, id)))
	}
	pipe.Set(ctx, "invoices:1100", "text", 0)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := a.Apply(ctx, apply.Batch{Writes: writes})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range res.Statuses {
		if want := map[bool]apply.Status{false: apply.Applied, true: apply.Refused}[i == 1100]; s != want {
			t.Errorf("write %d: %v, want %v (%s)", i, s, want, res.Reasons[i])
		}
	}
	if got := rdb.Get(ctx, "invoices:1100").Val(); got != "text" {
		t.Errorf("invoices:1100 = %q, want it left as it was", got)
	}
	if !rdb.SIsMember(ctx, "invoices:1199", "1199").Val() || !rdb.SIsMember(ctx, "invoices:0", "0").Val() {
		t.Errorf("the writes beside the refused one did not land")
	}
}
