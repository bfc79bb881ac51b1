package apply_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/rediserr"
	"github.com/eventhost/eventhost/sdk"
)

const dlStream = "eventhost:deadletter"

func setup(t *testing.T, maxLen int64) (context.Context, *redis.Client, *apply.Applier) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	rdb := redistest.Start(t).Client()
	a := apply.New(rdb, dlStream)
	a.DeadLetterMaxLen = maxLen
	return t.Context(), rdb, a
}

func orderKey(id string) string { return "purchase_order_details:" + id }

// createOrder writes the hash of order id as a publisher would.
func createOrder(t *testing.T, ctx context.Context, rdb *redis.Client, id string) {
	t.Helper()
	err := rdb.HSet(ctx, orderKey(id), "ts", "1700000000", "qty", "3", "cost", "12.5", "event", "rock", "who", "ann").Err()
	if err != nil {
		t.Fatal(err)
	}
}

func write(id, plugin string, effects ...sdk.Effect) apply.Write {
	return apply.Write{OrderKey: orderKey(id), Marker: keyspace.DoneField(plugin), Effects: effects,
		Plugin: plugin, OrderID: id, Channel: "purchase_orders"}
}

// isDone reports whether w's order hash marks w's plugin done, by either
// form of done marker (keyspace.Done).
func isDone(t *testing.T, ctx context.Context, rdb redis.Cmdable, w apply.Write) bool {
	t.Helper()
	fields, err := rdb.HGetAll(ctx, w.OrderKey).Result()
	if err != nil {
		t.Fatalf("read the markers of %s: %v", w.OrderKey, err)
	}
	return keyspace.Done(fields, w.Plugin)
}

// donePlugins returns, sorted, the plugins the order hash at key marks
// done, by either form of done marker.
func donePlugins(t *testing.T, ctx context.Context, rdb redis.Cmdable, key string) []string {
	t.Helper()
	fields, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatalf("read the markers of %s: %v", key, err)
	}
	var out []string
	for f, v := range fields {
		if p, ok := strings.CutPrefix(f, keyspace.DonePrefix); ok {
			out = append(out, p)
		}
		if f == keyspace.DoneListField {
			out = slices.AppendSeq(out, keyspace.DoneListPlugins(v))
		}
	}
	slices.Sort(out)
	return out
}

// wantDoneList fails unless the markers of the order hash at key are one
// list (keyspace.DoneList) of plugins, in that order, timed between
// before and after (unix µs, cut to ms), and no field each.
func wantDoneList(t *testing.T, ctx context.Context, rdb redis.Cmdable, key string, before, after int64, plugins ...string) {
	t.Helper()
	fields, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatalf("read the markers of %s: %v", key, err)
	}
	var marks []string
	for f := range fields {
		if strings.HasPrefix(f, keyspace.MarkerPrefix) {
			marks = append(marks, f)
		}
	}
	if !reflect.DeepEqual(marks, []string{keyspace.DoneListField}) {
		t.Fatalf("%s holds the markers %v, want only %s", key, marks, keyspace.DoneListField)
	}
	at, names, _ := strings.Cut(fields[keyspace.DoneListField], " ")
	if names != strings.Join(plugins, " ") {
		t.Errorf("%s's list names %q, want %q", key, names, strings.Join(plugins, " "))
	}
	if ms, err := strconv.ParseInt(at, 10, 64); err != nil || ms < before/1000 || ms > after/1000 {
		t.Errorf("%s's list = %q, want a unix time in ms between %d and %d first", key, fields[keyspace.DoneListField], before/1000, after/1000)
	}
}

func eff(cmd, key string, args ...string) sdk.Effect {
	return sdk.Effect{Command: cmd, Key: key, Args: args}
}

// dump returns every key but the order hashes, the dead-letter stream and
// the applies' count and ring (bookkeeping: TestApplyNumbersItsRuns checks
// those), with its content, so tests can compare the whole written state.
func dump(t *testing.T, ctx context.Context, rdb *redis.Client) map[string]any {
	t.Helper()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, k := range keys {
		if strings.HasPrefix(k, "purchase_order_details:") || k == dlStream {
			continue
		}
		typ := rdb.Type(ctx, k).Val()
		switch typ {
		case "hash":
			out[k] = rdb.HGetAll(ctx, k).Val()
		case "set":
			out[k] = rdb.SMembers(ctx, k).Val()
		case "string":
			out[k] = rdb.Get(ctx, k).Val()
		default:
			out[k] = typ
		}
	}
	return out
}

func TestApplyWritesAndIsIdempotent(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	createOrder(t, ctx, rdb, "1")
	createOrder(t, ctx, rdb, "2")
	var summary, invoices sdk.Effects
	summary.SAdd("sales:rock", "1")
	summary.HIncrByFloat("sales_summary", "rock:total_sales", 12.5)
	summary.HIncrBy("sales_summary", "rock:total_tickets_sold", 3)
	invoices.SAdd("invoices:ann", "1")
	batch := apply.Batch{Writes: []apply.Write{
		write("1", "events-summary", summary.List()...),
		write("1", "customer-invoices", invoices.List()...),
		write("2", "counter", eff("INCRBY", "count", "3"), eff("BITFIELD", "hist", "INCRBY", "u8", "8", "3")),
	}}
	want := map[string]any{
		"sales:rock":    []string{"1"},
		"sales_summary": map[string]string{"rock:total_sales": "12.5", "rock:total_tickets_sold": "3"},
		"invoices:ann":  []string{"1"},
		"count":         "3",
		"hist":          "\x00\x03",
	}

	// The done markers hold the apply time (see apply.go).
	before := time.Now().UnixMicro()
	res, err := a.Apply(ctx, batch)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	after := time.Now().UnixMicro()
	if want := []apply.Status{apply.Applied, apply.Applied, apply.Applied}; !reflect.DeepEqual(res.Statuses, want) {
		t.Fatalf("first Apply = %+v, want all Applied and no failures", res)
	}
	if got := dump(t, ctx, rdb); !reflect.DeepEqual(got, want) {
		t.Errorf("after first Apply:\n got %#v\nwant %#v", got, want)
	}
	// Each order's plugins are marked done with one list.
	wantDoneList(t, ctx, rdb, orderKey("1"), before, after, "events-summary", "customer-invoices")
	wantDoneList(t, ctx, rdb, orderKey("2"), before, after, "counter")

	res, err = a.Apply(ctx, batch)
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if want := []apply.Status{apply.AlreadyDone, apply.AlreadyDone, apply.AlreadyDone}; !reflect.DeepEqual(res.Statuses, want) {
		t.Errorf("second Apply = %+v, want all AlreadyDone", res)
	}
	if got := dump(t, ctx, rdb); !reflect.DeepEqual(got, want) {
		t.Errorf("the second Apply changed the data:\n got %#v\nwant %#v", got, want)
	}
}

// Redis without the script (first use, SCRIPT FLUSH, a restart) gets it
// by EVAL, as redis.Script.Run would send it: the batch still lands.
func TestApplyRunsScriptRedisLacks(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	for i, n := range []string{"3", "4"} {
		id := strconv.Itoa(i)
		createOrder(t, ctx, rdb, id)
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		res, err := a.Apply(ctx, apply.Batch{Writes: []apply.Write{write(id, "counter", eff("INCRBY", "count", n))}})
		if err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
		if res.Statuses[0] != apply.Applied {
			t.Fatalf("Apply %d: %+v, want Applied", i, res)
		}
	}
	if got := rdb.Get(ctx, "count").Val(); got != "7" {
		t.Errorf("count = %q, want 7", got)
	}
	if got := commandCalls(t, ctx, rdb)["eval"]; got != 2 {
		t.Errorf("EVAL ran %d times, want 2: once per batch, after EVALSHA found no script", got)
	}
}

// A pair twice in one batch (an id delivered twice) is applied once,
// whether its copies come one after the other or after another order's
// writes.
func TestApplyPairTwiceInBatch(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	for _, id := range []string{"1", "2", "3"} {
		createOrder(t, ctx, rdb, id)
	}
	inc := func(id, plugin string) apply.Write {
		return write(id, plugin, eff("HINCRBY", "per", id+":"+plugin, "1"))
	}
	for name, tc := range map[string]struct {
		writes []apply.Write
		want   []apply.Status
	}{
		"one after the other": {
			[]apply.Write{inc("1", "a"), inc("1", "b"), inc("1", "a"), inc("2", "a"), inc("2", "a")},
			[]apply.Status{apply.Applied, apply.Applied, apply.AlreadyDone, apply.Applied, apply.AlreadyDone},
		},
		"after another order": {
			[]apply.Write{inc("3", "a"), inc("1", "c"), inc("3", "b"), inc("3", "a"), inc("1", "c")},
			[]apply.Status{apply.Applied, apply.Applied, apply.Applied, apply.AlreadyDone, apply.AlreadyDone},
		},
	} {
		res, err := a.Apply(ctx, apply.Batch{Writes: tc.writes})
		if err != nil {
			t.Fatalf("%s: Apply: %v", name, err)
		}
		if !reflect.DeepEqual(res.Statuses, tc.want) {
			t.Errorf("%s: statuses %v, want %v", name, res.Statuses, tc.want)
		}
	}
	want := map[string]string{"1:a": "1", "1:b": "1", "2:a": "1", "3:a": "1", "3:b": "1", "1:c": "1"}
	if got := rdb.HGetAll(ctx, "per").Val(); !reflect.DeepEqual(got, want) {
		t.Errorf("per = %v, want %v: each pair counted once", got, want)
	}
}

func TestApplyVanishedOrder(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	createOrder(t, ctx, rdb, "1")
	res, err := a.Apply(ctx, apply.Batch{Writes: []apply.Write{
		write("gone", "events-summary", eff("SADD", "sales:x", "gone"), eff("HINCRBY", "sales_summary", "x:total_tickets_sold", "1")),
		write("1", "customer-invoices", eff("SADD", "invoices:ann", "1")),
	}})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if want := []apply.Status{apply.Vanished, apply.Applied}; !reflect.DeepEqual(res.Statuses, want) {
		t.Errorf("statuses = %v, want %v", res.Statuses, want)
	}
	want := map[string]any{"invoices:ann": []string{"1"}}
	if got := dump(t, ctx, rdb); !reflect.DeepEqual(got, want) {
		t.Errorf("data = %#v, want only %#v", got, want)
	}
	if n := rdb.Exists(ctx, orderKey("gone")).Val(); n != 0 {
		t.Errorf("the vanished order's hash was recreated (by its marker)")
	}
}

// A write Redis would refuse is left out whole, as a dead letter naming the
// key and why, in the same atomic step as the writes that land; no other
// write touching other keys is held back.
func TestApplyRefusesWhatRedisWouldRefuse(t *testing.T) {
	tests := []struct {
		name   string
		before func(ctx context.Context, rdb *redis.Client) error
		writes []apply.Write
		want   []apply.Status
		reason string // of the refused write
		data   map[string]any
	}{
		{
			name:   "key already holds another type",
			before: func(ctx context.Context, rdb *redis.Client) error { return rdb.Set(ctx, "sales:x", "text", 0).Err() },
			writes: []apply.Write{
				write("1", "customer-invoices", eff("SADD", "invoices:ann", "1")),
				write("1", "events-summary", eff("HINCRBY", "sales_summary", "x:total_tickets_sold", "1"), eff("SADD", "sales:x", "1")),
				write("2", "events-summary", eff("HINCRBY", "sales_summary", "y:total_tickets_sold", "2")),
			},
			want:   []apply.Status{apply.Applied, apply.Refused, apply.Applied},
			reason: "refused effect: key sales:x holds a string, but its effects need a set",
			data: map[string]any{
				"sales:x": "text", "invoices:ann": []string{"1"},
				"sales_summary": map[string]string{"y:total_tickets_sold": "2"},
			},
		},
		{
			name:   "two writes of the batch disagree on a key's type",
			before: func(context.Context, *redis.Client) error { return nil },
			writes: []apply.Write{
				write("1", "a", eff("SADD", "k", "1")),
				write("1", "b", eff("HINCRBY", "k", "f", "1")),
			},
			want:   []apply.Status{apply.Applied, apply.Refused},
			reason: "refused effect: HINCRBY k conflicts with an earlier write in the batch, which writes the key with set",
			data:   map[string]any{"k": []string{"1"}},
		},
		{
			name:   "one write disagrees with itself on a key's type",
			before: func(context.Context, *redis.Client) error { return nil },
			writes: []apply.Write{
				write("1", "a", eff("SADD", "k", "1"), eff("HINCRBY", "k", "f", "1")),
				write("2", "b", eff("SADD", "other", "2")),
			},
			want:   []apply.Status{apply.Refused, apply.Applied},
			reason: "refused effect: HINCRBY k conflicts with this write, which writes the key with set",
			data:   map[string]any{"other": []string{"2"}},
		},
		{
			name:   "increment of a field holding text",
			before: func(ctx context.Context, rdb *redis.Client) error { return rdb.HSet(ctx, "h", "f", "text").Err() },
			writes: []apply.Write{
				write("1", "ok", eff("SADD", "s:1", "1")),
				write("2", "bad", eff("SADD", "s:2", "2"), eff("HINCRBY", "h", "f", "1"), eff("HINCRBY", "h", "g", "5")),
			},
			want:   []apply.Status{apply.Applied, apply.Refused},
			reason: `refused effect: key h field f holds "text", not an integer`,
			data:   map[string]any{"s:1": []string{"1"}, "h": map[string]string{"f": "text"}},
		},
		{
			name:   "an increment the batch itself makes impossible",
			before: func(context.Context, *redis.Client) error { return nil },
			writes: []apply.Write{
				write("1", "a", eff("HSET", "h", "f", "text"), eff("HINCRBY", "h", "f", "1")),
				write("2", "b", eff("HINCRBY", "h", "g", "1")),
			},
			want:   []apply.Status{apply.Refused, apply.Applied},
			reason: `refused effect: key h field f holds "text", not an integer`,
			data:   map[string]any{"h": map[string]string{"g": "1"}},
		},
		{
			name: "integer overflow",
			before: func(ctx context.Context, rdb *redis.Client) error {
				return rdb.HSet(ctx, "h", "f", "9223372036854775800").Err()
			},
			writes: []apply.Write{write("1", "a", eff("HINCRBY", "h", "f", "100"))},
			want:   []apply.Status{apply.Refused},
			reason: "refused effect: key h field f would overflow a 64-bit integer",
			data:   map[string]any{"h": map[string]string{"f": "9223372036854775800"}},
		},
		{
			name:   "INCRBY of a string that is not a number",
			before: func(ctx context.Context, rdb *redis.Client) error { return rdb.Set(ctx, "n", "007", 0).Err() },
			writes: []apply.Write{write("1", "a", eff("INCRBY", "n", "1"))},
			want:   []apply.Status{apply.Refused},
			reason: `refused effect: key n holds "007", not an integer`,
			data:   map[string]any{"n": "007"},
		},
		{
			name:   "PFADD to a string that is not a HyperLogLog",
			before: func(ctx context.Context, rdb *redis.Client) error { return rdb.Set(ctx, "hll", "plain", 0).Err() },
			writes: []apply.Write{write("1", "a", eff("PFADD", "hll", "x")), write("2", "b", eff("SADD", "ok", "2"))},
			want:   []apply.Status{apply.Refused, apply.Applied},
			reason: "refused effect: key hll is not a HyperLogLog",
			data:   map[string]any{"hll": "plain", "ok": []string{"2"}},
		},
		{
			// Redis reads floats into a 5,120-byte buffer (string2ld); Lua's
			// tonumber takes this one, Redis' HINCRBYFLOAT refuses it.
			name:   "float increment of a value too long for Redis to read",
			before: func(ctx context.Context, rdb *redis.Client) error { return rdb.HSet(ctx, "h", "f", longFloat).Err() },
			writes: []apply.Write{write("1", "a", eff("HINCRBYFLOAT", "h", "f", "1.5")), write("2", "b", eff("HINCRBY", "h", "g", "2"))},
			want:   []apply.Status{apply.Refused, apply.Applied},
			reason: `refused effect: key h field f holds "1.00000000000000000000000000000000000000", not a number Redis can read`,
			data:   map[string]any{"h": map[string]string{"f": longFloat, "g": "2"}},
		},
		{
			name:   "float increment of a value that underflows",
			before: func(ctx context.Context, rdb *redis.Client) error { return rdb.HSet(ctx, "h", "f", "1e-5000").Err() },
			writes: []apply.Write{write("1", "a", eff("HINCRBYFLOAT", "h", "f", "1.5")), write("2", "b", eff("HINCRBY", "h", "g", "2"))},
			want:   []apply.Status{apply.Refused, apply.Applied},
			reason: `refused effect: key h field f holds "1e-5000", not a number Redis can read`,
			data:   map[string]any{"h": map[string]string{"f": "1e-5000", "g": "2"}},
		},
		{
			// A BITFIELD can write a string that only starts like one.
			name: "PFADD to a string that starts like a HyperLogLog but is not one",
			before: func(ctx context.Context, rdb *redis.Client) error {
				return rdb.Set(ctx, "hll", "HYLL-not-really", 0).Err()
			},
			writes: []apply.Write{write("1", "a", eff("PFADD", "hll", "x")), write("2", "b", eff("SADD", "ok", "2"))},
			want:   []apply.Status{apply.Refused, apply.Applied},
			reason: "refused effect: key hll is not a HyperLogLog",
			data:   map[string]any{"hll": "HYLL-not-really", "ok": []string{"2"}},
		},
		{
			name:   "a command outside the allowlist",
			before: func(context.Context, *redis.Client) error { return nil },
			writes: []apply.Write{write("1", "p", eff("SADD", "s", "1"), eff("DEL", "s"))},
			want:   []apply.Status{apply.Refused},
			reason: "refused effect: command DEL is not allowed",
			data:   map[string]any{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, rdb, a := setup(t, 0)
			createOrder(t, ctx, rdb, "1")
			createOrder(t, ctx, rdb, "2")
			if err := tt.before(ctx, rdb); err != nil {
				t.Fatal(err)
			}
			res, err := a.Apply(ctx, apply.Batch{
				Writes:      tt.writes,
				DeadLetters: []deadletter.Entry{{OrderID: "9", Channel: "c", Reason: "bad"}},
			})
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if !reflect.DeepEqual(res.Statuses, tt.want) {
				t.Fatalf("statuses = %v, want %v (reasons %v)", res.Statuses, tt.want, res.Reasons)
			}
			if got := dump(t, ctx, rdb); !reflect.DeepEqual(got, tt.data) {
				t.Errorf("data:\n got %#v\nwant %#v", got, tt.data)
			}
			var refused []apply.Write
			for i, st := range res.Statuses {
				w := tt.writes[i]
				done := isDone(t, ctx, rdb, w)
				dead := rdb.HExists(ctx, w.OrderKey, keyspace.DeadField(w.Plugin)).Val()
				if done != (st == apply.Applied) || dead != (st == apply.Refused) {
					t.Errorf("write %d (%v): done marker %v, dead marker %v", i, st, done, dead)
				}
				if st == apply.Refused {
					refused = append(refused, w)
					if res.Reasons[i] != tt.reason {
						t.Errorf("reason = %q\nwant     %q", res.Reasons[i], tt.reason)
					}
				}
			}
			entries := rdb.XRange(ctx, dlStream, "-", "+").Val()
			if len(entries) != 1+len(refused) || len(res.DeadLetters) != len(entries) {
				t.Fatalf("dead letters = %v (result %v), want the batch's one and %d refused", entries, res.DeadLetters, len(refused))
			}
			for i, w := range refused {
				v := entries[1+i].Values
				if v["order_id"] != w.OrderID || v["plugin"] != w.Plugin || v["reason"] != tt.reason {
					t.Errorf("dead letter %v, want order %s plugin %s reason %q", v, w.OrderID, w.Plugin, tt.reason)
				}
			}
		})
	}
}

// longFloat is a number Lua reads and Redis does not: 5,202 bytes.
var longFloat = "1." + strings.Repeat("0", 5200)

// A value check the ACL user may not read fails the batch closed: the
// script cannot tell whether the write would land, so it writes nothing.
func TestApplyCheckReadDeniedFailsClosed(t *testing.T) {
	ctx, admin, _ := setup(t, 0)
	createOrder(t, ctx, admin, "1")
	admin.Set(ctx, "n", "abc", 0)
	if err := admin.Do(ctx, "ACL", "SETUSER", "eh", "on", ">pw", "~*", "&*", "+@all", "-get").Err(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: admin.Options().Addr, Username: "eh", Password: "pw"})
	t.Cleanup(func() { rdb.Close() })
	a := apply.New(rdb, dlStream)
	_, err := a.Apply(ctx, apply.Batch{Writes: []apply.Write{
		write("1", "a", eff("INCRBY", "n", "1")),
		write("1", "b", eff("HINCRBY", "h", "g", "2")),
	}})
	if err == nil || !strings.Contains(err.Error(), "NOPERM cannot read n") {
		t.Fatalf("Apply = %v, want a NOPERM error naming the key", err)
	}
	if got := dump(t, ctx, admin); !reflect.DeepEqual(got, map[string]any{"n": "abc"}) {
		t.Errorf("data: %#v, want n alone, unchanged", got)
	}
	if admin.HExists(ctx, orderKey("1"), keyspace.DoneField("b")).Val() || admin.Exists(ctx, dlStream).Val() != 0 {
		t.Errorf("a marker or a dead letter was written")
	}
}

// eventhost's own streams holding another type is the operator's to fix:
// nothing is written and the error says which key.
func TestApplyOwnKeyOfAnotherType(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	createOrder(t, ctx, rdb, "1")
	rdb.Set(ctx, dlStream, "x", 0)
	_, err := a.Apply(ctx, apply.Batch{Writes: []apply.Write{write("1", "a", eff("SADD", "s", "1"))}})
	var own *apply.OwnKeyError
	if !errors.As(err, &own) || own.Key != dlStream || own.Have != "string" {
		t.Fatalf("Apply = %v, want an OwnKeyError for %s", err, dlStream)
	}
	if class, reason := rediserr.Classify(err); class != rediserr.Paused || reason != "eventhost's own key holds another type" {
		t.Errorf("Classify = %v %q, want a pause naming eventhost's own key", class, reason)
	}
	if rdb.Exists(ctx, "s").Val() != 0 || rdb.HExists(ctx, orderKey("1"), keyspace.DoneField("a")).Val() {
		t.Errorf("part of the batch was written")
	}
}

func TestApplyDeadLetters(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	entries := []deadletter.Entry{
		{OrderID: "7", Channel: "purchase_orders", Reason: "order hash purchase_order_details:7 does not exist", Attempts: 1},
		{OrderID: "8", Channel: "vip", Plugin: "sales-histogram", Reason: "plugin crashed", Attempts: 3},
	}
	before := time.Now().UnixMilli()
	res, err := a.Apply(ctx, apply.Batch{DeadLetters: entries})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	after := time.Now().UnixMilli()
	if len(res.Statuses) != 0 {
		t.Errorf("result = %+v, want empty", res)
	}
	msgs, err := rdb.XRange(ctx, dlStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(entries) {
		t.Fatalf("got %d dead letters, want %d", len(msgs), len(entries))
	}
	for i, m := range msgs {
		e := entries[i]
		ms, err := strconv.ParseInt(m.Values["time_ms"].(string), 10, 64)
		if err != nil || ms < before || ms > after {
			t.Errorf("entry %d time_ms = %v, want between %d and %d", i, m.Values["time_ms"], before, after)
		}
		delete(m.Values, "time_ms")
		want := map[string]any{
			"order_id": e.OrderID, "channel": e.Channel, "plugin": e.Plugin,
			"reason": e.Reason, "attempts": strconv.Itoa(e.Attempts),
		}
		if !reflect.DeepEqual(m.Values, want) {
			t.Errorf("entry %d = %v, want %v", i, m.Values, want)
		}
	}
	got, err := deadletter.List(ctx, rdb, dlStream, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got[1].Plugin != "sales-histogram" || got[1].Attempts != 3 || got[1].Time.IsZero() {
		t.Errorf("deadletter.List decoded %+v", got[1])
	}
}

func TestApplyDeadLettersWithMaxLen(t *testing.T) {
	ctx, rdb, a := setup(t, 5)
	for i := range 20 {
		_, err := a.Apply(ctx, apply.Batch{DeadLetters: []deadletter.Entry{{OrderID: strconv.Itoa(i), Reason: "r", Attempts: 1}}})
		if err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
	}
	// MAXLEN ~ trims whole stream nodes only, so the exact length is up to
	// Redis; the newest entry must be there.
	msgs, err := rdb.XRevRangeN(ctx, dlStream, "+", "-", 1).Result()
	if err != nil || len(msgs) != 1 || msgs[0].Values["order_id"] != "19" {
		t.Errorf("newest dead letter = %v, %v; want order 19", msgs, err)
	}
	if n := rdb.XLen(ctx, dlStream).Val(); n < 5 || n > 20 {
		t.Errorf("XLEN = %d, want between 5 and 20", n)
	}
}

func TestApplyEmptyBatch(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	res, err := a.Apply(ctx, apply.Batch{})
	if err != nil || len(res.Statuses) != 0 {
		t.Errorf("Apply(empty) = %+v, %v", res, err)
	}
	if n := rdb.DBSize(ctx).Val(); n != 0 {
		t.Errorf("empty batch wrote %d keys", n)
	}
}

// Dead letters mark their order's hash (never creating one), replayed dead
// letters are deleted, and stream entries are acknowledged, each on its own
// stream (a sharded source reads several), all in the batch's one script.
func TestApplyMarksReplaysAndAcks(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	const group = "eventhost"
	streams := []string{"purchase_orders:{0}", "purchase_orders:{1}"}
	a.AckGroup = group
	createOrder(t, ctx, rdb, "1")
	createOrder(t, ctx, rdb, "2")
	var entries []apply.Ack
	for _, stream := range streams {
		if err := rdb.XGroupCreateMkStream(ctx, stream, group, "0").Err(); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"1", "2", "3"} {
			e, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"id", id}}).Result()
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, apply.Ack{Stream: stream, ID: e})
		}
		if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "c", Streams: []string{stream, ">"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	old, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: dlStream, Values: []any{"order_id", "2", "plugin", "p"}}).Result()
	if err != nil {
		t.Fatal(err)
	}

	res, err := a.Apply(ctx, apply.Batch{
		Writes: []apply.Write{write("1", "p", eff("SADD", "s", "1"))},
		DeadLetters: []deadletter.Entry{
			{OrderID: "2", Plugin: "p", Reason: "no", Attempts: 3, OrderKey: orderKey("2")},
			{OrderID: "3", Reason: "order hash purchase_order_details:3 does not exist", Attempts: 1, OrderKey: orderKey("3")},
		},
		Replayed: []string{old},
		// Entry ids of the two streams may be equal: each ack names its own.
		Acks: []apply.Ack{entries[0], entries[4], entries[1]},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Statuses, []apply.Status{apply.Applied}) {
		t.Errorf("statuses = %v", res.Statuses)
	}
	if _, err := rdb.HGet(ctx, orderKey("2"), keyspace.DeadField("p")).Result(); err != nil {
		t.Errorf("order 2 has no dead marker for p: %v", err)
	}
	if n := rdb.Exists(ctx, orderKey("3")).Val(); n != 0 {
		t.Errorf("a dead letter created the hash of missing order 3")
	}
	letters, err := deadletter.List(ctx, rdb, dlStream, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range letters {
		got = append(got, l.OrderID+"/"+l.Plugin+"/"+strconv.Itoa(l.Attempts))
	}
	if want := []string{"2/p/3", "3//1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("dead letters = %v, want %v (the replayed one deleted)", got, want)
	}
	for s, stream := range streams {
		pending, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: group, Start: "-", End: "+", Count: 10}).Result()
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range pending {
			ids = append(ids, p.ID)
		}
		want := []string{entries[2].ID} // entries 0 and 1 acknowledged
		if s == 1 {
			want = []string{entries[3].ID, entries[5].ID} // entry 4 acknowledged
		}
		if !reflect.DeepEqual(ids, want) {
			t.Errorf("pending on %s = %v, want %v", stream, ids, want)
		}
	}
}

func TestApplyAcksNeedAStream(t *testing.T) {
	ctx, _, a := setup(t, 0)
	if _, err := a.Apply(ctx, apply.Batch{Acks: []apply.Ack{{Stream: "s", ID: "1-1"}}}); err == nil || !strings.Contains(err.Error(), "AckGroup") {
		t.Errorf("Apply with acks and no group: err = %v, want one naming AckGroup", err)
	}
}

// A batch larger than MaxArgs is applied in several runs, each whole, split
// between orders; its dead letters are written once, with the last run.
func TestApplySplitsLargeBatches(t *testing.T) {
	ctx, rdb, a := setup(t, 0)
	a.MaxArgs = 20
	rdb.Set(ctx, "wrong", "text", 0)
	createOrder(t, ctx, rdb, "first")
	// Refused in the first run: its dead letter is reported too.
	writes := []apply.Write{write("first", "a", eff("SADD", "wrong", "x"))}
	for i := range 10 {
		id := strconv.Itoa(i)
		createOrder(t, ctx, rdb, id)
		writes = append(writes,
			write(id, "a", eff("INCRBY", "count", "1"), eff("SADD", "ids", id)),
			write(id, "b", eff("HINCRBY", "per", "f", "2")))
	}
	res, err := a.Apply(ctx, apply.Batch{Writes: writes, DeadLetters: []deadletter.Entry{{OrderID: "x", Channel: "c", Reason: "bad"}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range res.Statuses {
		if want := apply.Applied; i == 0 && st != apply.Refused || i > 0 && st != want {
			t.Fatalf("write %d: %v", i, st)
		}
	}
	if got := rdb.Get(ctx, "count").Val(); got != "10" {
		t.Errorf("count = %s, want 10", got)
	}
	if got := rdb.HGet(ctx, "per", "f").Val(); got != "20" {
		t.Errorf("per.f = %s, want 20", got)
	}
	if n := rdb.XLen(ctx, dlStream).Val(); n != 2 || len(res.DeadLetters) != 2 {
		t.Errorf("%d dead letters written (%d reported), want 2: the batch's and the refused write's", n, len(res.DeadLetters))
	}
	// Several runs: the script ran more than once.
	stats := commandCalls(t, ctx, rdb)
	calls := stats["evalsha"] + stats["eval"]
	if calls < 3 {
		t.Errorf("the script ran %d times for a batch of 10 orders over MaxArgs 20, want several runs", calls)
	}
}
