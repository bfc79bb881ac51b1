package apply_test

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/sdk"
)

// Each shape of the effects' runs (layout.go's opWriter, apply.lua's write
// loop) must leave Redis as the same effects applied one command at a
// time: long runs whose count and first key are past 255 (cut from
// text), runs of one and of several arguments, chunks of more than 1000
// arguments whose last chunk joins the next key's run, BITFIELDs over
// several commands, and batches split into parts.
func TestApplyRunShapes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	members := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = prefix + strconv.Itoa(i)
		}
		return out
	}
	// perOrder makes n orders of one write each, from the effects fx(o).
	perOrder := func(n int, fx func(o int) []apply.Write) []apply.Write {
		var writes []apply.Write
		for o := range n {
			writes = append(writes, fx(o)...)
		}
		return writes
	}
	id := func(o int) string { return "r" + strconv.Itoa(o) }
	tests := []struct {
		name    string
		orders  int
		maxArgs int
		writes  func() []apply.Write
	}{
		{name: "one SADD per order on its own key, 300 orders (argc 1, count and keys past 255)", orders: 300,
			writes: func() []apply.Write {
				return perOrder(300, func(o int) []apply.Write {
					return []apply.Write{write(id(o), "p", eff("SADD", fmt.Sprintf("s:%03d", o), id(o)))}
				})
			}},
		{name: "HINCRBY, INCRBY, PFADD, ZINCRBY, XADD per order on keys of their own, 300 orders", orders: 300,
			writes: func() []apply.Write {
				return perOrder(300, func(o int) []apply.Write {
					n := strconv.Itoa(o%7 - 2)
					return []apply.Write{write(id(o), "p",
						eff("HINCRBY", fmt.Sprintf("h:%03d", o), "f", n),
						eff("INCRBY", fmt.Sprintf("c:%03d", o), n),
						eff("PFADD", fmt.Sprintf("u:%03d:hll", o), id(o), "x"),
						eff("ZINCRBY", fmt.Sprintf("z:%03d", o), "1.25", id(o)),
						eff("XADD", fmt.Sprintf("x:%03d", o), "*", "f", id(o)),
					)}
				})
			}},
		{name: "every third order skips its key (runs broken by gaps)", orders: 90,
			writes: func() []apply.Write {
				return perOrder(90, func(o int) []apply.Write {
					if o%3 == 2 {
						return []apply.Write{write(id(o), "p", eff("HSET", fmt.Sprintf("h:%03d", o), "a", "1", "b", "2"))}
					}
					return []apply.Write{write(id(o), "p", eff("HINCRBY", fmt.Sprintf("h:%03d", o), "f", "3"),
						eff("SADD", fmt.Sprintf("s:%03d", o), "m"))}
				})
			}},
		{name: "SADDs of 2500, 500 and 1000 members (chunks; a last chunk joins the next key's run)", orders: 1,
			writes: func() []apply.Write {
				return []apply.Write{write(id(0), "p",
					eff("SADD", "big:1", members("a", 2500)...),
					eff("SADD", "big:2", members("b", 500)...),
					eff("SADD", "big:3", members("c", 1000)...),
					eff("SADD", "big:4", members("d", 1000)...),
					eff("SADD", "big:5", "e"),
				)}
			}},
		{name: "HSETs of 700 and 200 fields (1400 arguments: a chunk of 400 joins the next hash's 400)", orders: 1,
			writes: func() []apply.Write {
				var a, b []string
				for i := range 700 {
					a = append(a, "f"+strconv.Itoa(i), strconv.Itoa(i))
				}
				for i := range 200 {
					b = append(b, "g"+strconv.Itoa(i), strconv.Itoa(i))
				}
				return []apply.Write{write(id(0), "p",
					eff("HSET", "wide:1", a...), eff("HINCRBY", "wide:1", "n", "1"),
					eff("HSET", "wide:2", b...))}
			}},
		{name: "PFADD of 1500 members", orders: 1,
			writes: func() []apply.Write {
				return []apply.Write{write(id(0), "p", eff("PFADD", "many:hll", members("m", 1500)...))}
			}},
		{name: "BITFIELDs of 400 counters and of mixed modes (several commands each)", orders: 2,
			writes: func() []apply.Write {
				var wide, mixed []string
				for i := range 400 {
					wide = append(wide, "INCRBY", "u8", "#"+strconv.Itoa(i), strconv.Itoa(1+i%200))
				}
				for i := range 300 {
					mode := []string{"WRAP", "SAT", "FAIL"}[i%3]
					mixed = append(mixed, "OVERFLOW", mode, "INCRBY", "i8", "#"+strconv.Itoa(i), strconv.Itoa(i%250-120))
				}
				return []apply.Write{
					write(id(0), "p", eff("BITFIELD", "bits:1", wide...), eff("BITFIELD", "bits:2", mixed...)),
					write(id(1), "p", eff("BITFIELD", "bits:3", "INCRBY", "u8", "#1", "7")),
				}
			}},
		{name: "300 orders split into parts by MaxArgs", orders: 300, maxArgs: 500,
			writes: func() []apply.Write {
				return perOrder(300, func(o int) []apply.Write {
					return []apply.Write{
						write(id(o), "p", eff("SADD", fmt.Sprintf("s:%03d", o%40), id(o)), eff("INCRBY", "total", "2")),
						write(id(o), "q", eff("HINCRBY", fmt.Sprintf("h:%03d", o%17), "f", "1"), eff("SADD", "all", id(o))),
					}
				})
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			ctx := t.Context()
			coalesced := srv.Client()
			oneByOne := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: 1})
			defer oneByOne.Close()
			a := apply.New(coalesced, dlStream)
			if tt.maxArgs > 0 {
				a.MaxArgs = tt.maxArgs
			}
			for o := range tt.orders {
				createOrder(t, ctx, coalesced, id(o))
			}
			applyEqualsOneByOne(t, ctx, a, coalesced, oneByOne, tt.writes(), 0)
			if len(state(t, ctx, coalesced)) == 0 {
				t.Fatal("nothing written")
			}
		})
	}
}

// Dead letters' order hashes join KEYS after the effects' keys: the runs
// before them must still write the right keys, and the dead letters mark
// the right orders.
func TestApplyRunsWithDeadLetterOrderKeys(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	var writes []apply.Write
	var dead []deadletter.Entry
	for o := range 270 {
		id := "k" + strconv.Itoa(o)
		createOrder(t, ctx, rdb, id)
		writes = append(writes, write(id, "p", eff("SADD", fmt.Sprintf("s:%03d", o), id)))
	}
	for o := range 5 {
		id := "dead" + strconv.Itoa(o)
		createOrder(t, ctx, rdb, id)
		dead = append(dead, deadletter.Entry{OrderID: id, Channel: "c", Plugin: "p", Reason: "bad", Attempts: 1, OrderKey: orderKey(id)})
	}
	res, err := a.Apply(ctx, apply.Batch{Writes: writes, DeadLetters: dead})
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range res.Statuses {
		if st != apply.Applied {
			t.Fatalf("write %d: %v", i, st)
		}
	}
	for o := range 270 {
		key, want := fmt.Sprintf("s:%03d", o), "k"+strconv.Itoa(o)
		if got := rdb.SMembers(ctx, key).Val(); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %v, want [%s]", key, got, want)
		}
	}
	if n := len(rdb.Keys(ctx, "s:*").Val()); n != 270 {
		t.Errorf("%d set keys, want 270", n)
	}
	for _, d := range dead {
		if n := rdb.HLen(ctx, d.OrderKey).Val(); n != 6 {
			t.Errorf("%s has %d fields, want its 5 and the dead letter's marker", d.OrderKey, n)
		}
	}
	if n := rdb.XLen(ctx, dlStream).Val(); n != 5 {
		t.Errorf("%d dead letters, want 5", n)
	}
}

// The permission loop steps over each run to the next one's header: a
// command the ACL user may not run, after runs of one and of several
// arguments on several keys, is refused before anything is written.
func TestApplyRunsDeniedCommandAfterOtherRuns(t *testing.T) {
	ctx, admin, _ := setup(t, 0)
	for _, deny := range []string{"-pfadd", "-zincrby", "-xadd", "-incrby", "-hincrby", "-sadd"} {
		t.Run(deny, func(t *testing.T) {
			if err := admin.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if err := admin.Do(ctx, "ACL", "SETUSER", "eh", "reset", "on", ">pw", "~*", "&*", "+@all", deny).Err(); err != nil {
				t.Fatal(err)
			}
			opt := *admin.Options()
			opt.Username, opt.Password = "eh", "pw"
			rdb := redis.NewClient(&opt)
			defer rdb.Close()
			a := apply.New(rdb, dlStream)
			var writes []apply.Write
			for o := range 3 {
				id := "a" + strconv.Itoa(o)
				createOrder(t, ctx, admin, id)
				writes = append(writes, write(id, "p",
					eff("SADD", "s:"+id, "m"), eff("HINCRBY", "h:"+id, "f", "2"), eff("INCRBY", "c:"+id, "3"),
					eff("ZINCRBY", "z:"+id, "1.5", "m"), eff("PFADD", "u:"+id, "x", "y"), eff("XADD", "x:"+id, "*", "f", "v")))
			}
			_, err := a.Apply(ctx, apply.Batch{Writes: writes})
			cmd := strings.ToUpper(deny[1:])
			if err == nil || !strings.Contains(err.Error(), "NOPERM this user may not run "+cmd) {
				t.Fatalf("Apply = %v, want NOPERM for %s", err, cmd)
			}
			keys := admin.Keys(ctx, "*").Val()
			for _, k := range keys {
				if !strings.HasPrefix(k, "purchase_order_details:") {
					t.Errorf("key %s written, want nothing", k)
				}
			}
		})
	}
}

// A batch lands whole or not at all. ZINCRBY has no value check: the
// script relies on Redis taking the coalesced increment, but Redis reads a
// ZINCRBY increment with strtod and refuses one past float64's range
// ("ERR value is not a valid float"), in the write phase, after the done
// markers and the commands before it were written. Two increments of
// 1e308 (plain decimals policy accepts, each finite) sum to one.
// Applied one by one, Redis takes both (the score becomes inf).
func TestApplyZIncrBySumPastFloat64IsAtomic(t *testing.T) {
	e308 := "1" + strings.Repeat("0", 308)
	testZIncrByAtomic(t, [][]string{{e308}, {e308}}, true)
}

// The same for a sum that underflows to zero: each increment is about
// 1e-300, their sum 1e-330, which Redis' strtod reads as an underflow and
// refuses.
func TestApplyZIncrBySumUnderflowIsAtomic(t *testing.T) {
	a := "0." + strings.Repeat("0", 299) + "1" + strings.Repeat("0", 29) + "1" // 1e-300 + 1e-330
	b := "-0." + strings.Repeat("0", 299) + "1"                                // -1e-300
	testZIncrByAtomic(t, [][]string{{a}, {b}}, true)
}

// testZIncrByAtomic applies one order per element of incs, each a SADD and
// ZINCRBYs of the increments on one member, and fails if Apply leaves a
// batch half written: an error with any marker or key written.
func testZIncrByAtomic(t *testing.T, incs [][]string, policyAccepts bool) {
	t.Helper()
	ctx, rdb, a := setup(t, 0)
	var writes []apply.Write
	for o, inc := range incs {
		id := "z" + strconv.Itoa(o)
		createOrder(t, ctx, rdb, id)
		fx := []sdk.Effect{eff("SADD", "seen", id)}
		for _, v := range inc {
			fx = append(fx, eff("ZINCRBY", "rank", v, "m"))
		}
		writes = append(writes, write(id, "p", fx...))
	}
	for _, w := range writes {
		for _, e := range w.Effects {
			if err := sdk.CheckEffect(e, sdk.Limits{}); (err == nil) != policyAccepts && e.Command == "ZINCRBY" {
				t.Fatalf("policy on %v: %v, want accepted %v", e, err, policyAccepts)
			}
		}
	}
	res, err := a.Apply(ctx, apply.Batch{Writes: writes})
	if err != nil {
		var left []string
		for _, k := range rdb.Keys(ctx, "*").Val() {
			if !strings.HasPrefix(k, "purchase_order_details:") {
				left = append(left, k)
			}
		}
		for _, w := range writes {
			if rdb.HExists(ctx, w.OrderKey, w.Marker).Val() {
				left = append(left, w.OrderKey+" "+w.Marker)
			}
		}
		if len(left) > 0 {
			t.Fatalf("Apply = %v, and the batch is half written: %v", err, left)
		}
		t.Fatalf("Apply = %v", err)
	}
	// Refusing the member's writes is what the script does for a hash
	// field's sum that would become infinite; a write lands whole or not.
	var want []string
	for i, w := range writes {
		done := rdb.HExists(ctx, w.OrderKey, w.Marker).Val()
		switch res.Statuses[i] {
		case apply.Applied:
			want = append(want, w.OrderID)
		case apply.Refused:
			if done {
				t.Errorf("write %d refused (%s), but its marker is set", i, res.Reasons[i])
			}
		default:
			t.Errorf("write %d: %v", i, res.Statuses[i])
		}
	}
	got := rdb.SMembers(ctx, "seen").Val()
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("seen = %v, want the applied writes' %v", got, want)
	}
	t.Logf("statuses %v, reasons %v, rank %v", res.Statuses, res.Reasons, rdb.ZRangeWithScores(ctx, "rank", 0, -1).Val())
}

// One ZINCRBY increment that Redis refuses as an underflow (a plain
// decimal Go's ParseFloat reads as 0 without an error). Policy refuses it
// now, before a batch is planned; the applier must still not write half
// the batch should one reach it.
func TestApplyZIncrByTinyIncrementIsAtomic(t *testing.T) {
	testZIncrByAtomic(t, [][]string{{"0." + strings.Repeat("0", 330) + "1"}}, false)
}
