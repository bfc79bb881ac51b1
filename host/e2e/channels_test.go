package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
)

// These tests check that a plugin never gets an order that did not arrive
// on one of its channels, by catch-up, backfill or replay: the source
// subscribes to a and b, customer-invoices listens on b only. A stored
// order does not say where it was published, so without id_prefixes
// customer-invoices is left out of catch-up and backfill, and with
// id_prefixes { b = "B-" } it gets exactly the orders whose id says b.

const invoices = "customer-invoices"

// everyChannel are the bundled plugins that listen on both channels.
var everyChannel = []string{"sales-histogram", "events-summary"}

// channelsConfig writes a config with the source on a and b and
// customer-invoices on b only; idPrefixes is the id_prefixes map's HCL
// ("" for none).
func channelsConfig(t *testing.T, srv *redistest.Server, idPrefixes string) string {
	t.Helper()
	prefixes := ""
	if idPrefixes != "" {
		prefixes = "id_prefixes = " + idPrefixes
	}
	cfg := fmt.Sprintf(`
redis { address = %q }
source "pubsub" {
  channels = ["a", "b"]
  %s
}
plugin_dir = %q
batch {
  max_orders = 64
  max_wait   = "1ms"
}
log { level = "debug" }
plugin "sales-histogram" {
  config {
    counter = "u8"
  }
}
plugin "events-summary" {}
plugin "customer-invoices" {
  channels = ["b"]
}
`, srv.Addr, prefixes, testbin.PluginDir(t))
	path := filepath.Join(t.TempDir(), "channels.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// chOrder is an order with whole costs, so that the float totals are exact
// and the expected state needs no replay.
func chOrder(id string, hour int, qty int64, cost int, who string) publish.Order {
	return publish.Order{ID: id, TS: publish.GamesStart + int64(hour)*3600, Qty: qty, Cost: strconv.Itoa(cost), Event: "Judo", Who: who}
}

func store(t *testing.T, rdb *redis.Client, os ...publish.Order) {
	t.Helper()
	for _, o := range os {
		if err := rdb.HSet(context.Background(), orderPrefix+o.ID, o.Fields()...).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func publishOn(t *testing.T, rdb *redis.Client, ch string, o publish.Order) {
	t.Helper()
	store(t, rdb, o)
	if err := rdb.Publish(context.Background(), ch, o.ID).Err(); err != nil {
		t.Fatal(err)
	}
}

// channelsState is what the bundled plugins leave when the two on every
// channel counted all and customer-invoices counted inv.
func channelsState(all, inv []publish.Order) map[string]value {
	want := modelState(all, 8)
	for k := range want {
		if strings.HasPrefix(k, "invoices:") {
			delete(want, k)
		}
	}
	for k, v := range modelState(inv, 8) {
		if strings.HasPrefix(k, "invoices:") {
			want[k] = v
		}
	}
	sales := map[string]int{}
	for _, o := range all {
		c, _ := strconv.Atoi(o.Cost)
		sales[o.Event] += c
	}
	lines := strings.Split(want["sales_summary"].Data, "\n")
	for ev, c := range sales {
		lines = append(lines, ev+":total_sales="+strconv.Itoa(c))
	}
	sort.Strings(lines)
	want["sales_summary"] = value{Type: "hash", Data: strings.Join(lines, "\n")}
	return want
}

// pluginState is rdb's state without order hashes, the registry (checked)
// and the dead-letter stream.
func pluginState(t *testing.T, rdb *redis.Client) map[string]value {
	t.Helper()
	got := dump(t, rdb, "")
	takeRegistry(t, got, bundled...)
	delete(got, deadLetterStream)
	for k := range got {
		if strings.HasPrefix(k, orderPrefix) {
			delete(got, k)
		}
	}
	return got
}

// hashHas checks that order id's hash holds exactly fields (values aside).
func hashHas(t *testing.T, rdb *redis.Client, id string, fields ...string) {
	t.Helper()
	got := doneView(rdb.HGetAll(context.Background(), orderPrefix+id).Val())
	want := append([]string{"ts", "qty", "cost", "event", "who"}, fields...)
	var names []string
	for f := range got {
		names = append(names, f)
	}
	sort.Strings(names)
	sort.Strings(want)
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("%s%s holds %v, want %v", orderPrefix, id, names, want)
	}
}

func doneOf(plugins ...string) []string {
	out := make([]string, len(plugins))
	for i, p := range plugins {
		out[i] = keyspace.DoneField(p)
	}
	return out
}

// deadLetters returns the dead-letter stream's entries as
// "order_id|channel|plugin", sorted.
func deadLetters(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), deadLetterStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%v|%v|%v", m.Values["order_id"], m.Values["channel"], m.Values["plugin"]))
	}
	sort.Strings(out)
	return out
}

func catchUps(h *host) int { return strings.Count(h.log.String(), "catch-up done") }

// TestChannelsCatchUp is the reproduction: an order published on
// a, then CLIENT KILL TYPE pubsub; the catch-up after the reconnect must
// not give it to customer-invoices. Neither must the catch-up at the next
// start give it an order stored while the host was down, and a bad order
// it finds is dead-lettered with no channel rather than a made-up one.
func TestChannelsCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	cfg := channelsConfig(t, srv, "")

	h := startHost(t, rdb, cfg)
	onA, onB := chOrder("A1", 1, 2, 10, "ann"), chOrder("B1", 2, 3, 20, "bob")
	publishOn(t, rdb, "a", onA)
	publishOn(t, rdb, "b", onB)
	waitApplied(t, rdb, []string{onA.ID}, everyChannel, 30*time.Second)
	waitApplied(t, rdb, []string{onB.ID}, bundled, 30*time.Second)
	before := catchUps(h)
	if err := rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the catch-up after the reconnect", func() bool { return catchUps(h) > before })
	if code := h.stop(t); code != 0 {
		t.Fatalf("eventhost exited %d after SIGTERM, want 0", code)
	}
	hashHas(t, rdb, onA.ID, doneOf(everyChannel...)...)

	// Stored while no host ran, never published: its channel is unknown.
	down := chOrder("Y1", 3, 1, 5, "cyd")
	store(t, rdb, down)
	if err := rdb.HSet(ctx, orderPrefix+"Z1", "ts", "1627000000", "qty", "many", "cost", "1", "event", "Judo", "who", "dee").Err(); err != nil {
		t.Fatal(err)
	}
	h = startHost(t, rdb, cfg)
	waitApplied(t, rdb, []string{down.ID}, everyChannel, 30*time.Second)
	if code := h.stop(t); code != 0 {
		t.Fatalf("eventhost exited %d after SIGTERM, want 0", code)
	}

	hashHas(t, rdb, onA.ID, doneOf(everyChannel...)...)
	hashHas(t, rdb, onB.ID, doneOf(bundled...)...)
	hashHas(t, rdb, down.ID, doneOf(everyChannel...)...)
	hashHas(t, rdb, "Z1", keyspace.DeadOrderField)
	if got, want := deadLetters(t, rdb), []string{"Z1||"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("dead letters = %q, want %q (a bad order found by catch-up, channel unknown)", got, want)
	}
	diffState(t, pluginState(t, rdb), channelsState([]publish.Order{onA, onB, down}, []publish.Order{onB}))
	if !strings.Contains(h.log.String(), "plugin left out of catch-up") {
		t.Errorf("the log does not say that %s is left out of catch-up", invoices)
	}
}

// TestChannelsWithIDPrefixes: with id_prefixes { b = "B-" }, catch-up gives
// customer-invoices the orders whose id says b and no other, and labels
// their dead letters b; backfill does the same (and refuses to run for it
// without id_prefixes); a replay keeps each dead letter's channel and gives
// the order only to the plugins that listen on it.
func TestChannelsWithIDPrefixes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	plain := channelsConfig(t, srv, "")
	cfg := channelsConfig(t, srv, `{ b = "B-" }`)

	// History, stored before any host ran: backfill's to count.
	histA, histB, histX := chOrder("A-1", 1, 1, 10, "ann"), chOrder("B-1", 2, 2, 20, "bob"), chOrder("X-1", 3, 3, 30, "cyd")
	store(t, rdb, histA, histB, histX)

	res := runEventhost(t, 2*time.Minute, nil, "backfill", "-config", plain, "-plugin", invoices)
	if res.code != 1 || !strings.Contains(res.stderr, "id_prefixes") {
		t.Errorf("backfill of %s without id_prefixes exited %d, want 1 naming id_prefixes\nstderr:\n%s", invoices, res.code, tail(res.stderr, 10))
	}
	if n := rdb.DBSize(ctx).Val(); n != 3 {
		t.Errorf("the refused backfill left %d keys, want the 3 orders alone", n)
	}

	res = mustRun(t, 0, "backfill", "-config", cfg, "-plugin", invoices)
	wantLine(t, res.stdout, "2 more orders left out: their channel is not one of the plugin's, or cannot be told")
	if !strings.Contains(res.stdout, "processed 1, already done 0, dead-lettered 0 (1 to do of 3 orders stored)") {
		t.Errorf("backfill summary %q, want 1 processed of 3 stored", res.stdout)
	}
	hashHas(t, rdb, histB.ID, keyspace.DoneField(invoices), keyspace.HistoryField(invoices))
	hashHas(t, rdb, histA.ID, keyspace.HistoryField(invoices))

	// The first start registers the other two: the three orders are their
	// history. Then, while no host runs, orders and bad orders arrive.
	h := startHost(t, rdb, cfg)
	if code := h.stop(t); code != 0 {
		t.Fatalf("eventhost exited %d after SIGTERM, want 0", code)
	}
	downA, downB := chOrder("A-2", 4, 1, 40, "ann"), chOrder("B-2", 5, 2, 50, "eve")
	store(t, rdb, downA, downB)
	for _, id := range []string{"X-bad", "B-bad"} {
		if err := rdb.HSet(ctx, orderPrefix+id, "ts", strconv.FormatInt(publish.GamesStart+6*3600, 10), "qty", "1", "cost", "lots", "event", "Judo", "who", "fay").Err(); err != nil {
			t.Fatal(err)
		}
	}
	h = startHost(t, rdb, cfg)
	waitApplied(t, rdb, []string{downA.ID}, everyChannel, 30*time.Second)
	waitApplied(t, rdb, []string{downB.ID}, bundled, 30*time.Second)
	if code := h.stop(t); code != 0 {
		t.Fatalf("eventhost exited %d after SIGTERM, want 0", code)
	}
	hist := historyMarkers(everyChannel...)
	hashHas(t, rdb, histA.ID, append(hist, keyspace.HistoryField(invoices))...)
	hashHas(t, rdb, histB.ID, append(hist, keyspace.HistoryField(invoices), keyspace.DoneField(invoices))...)
	hashHas(t, rdb, downA.ID, doneOf(everyChannel...)...)
	hashHas(t, rdb, downB.ID, doneOf(bundled...)...)
	if got, want := deadLetters(t, rdb), []string{"B-bad|b|", "X-bad||"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("dead letters = %q, want %q", got, want)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Fixed, the bad orders are replayed: X-bad (channel unknown) goes to
	// the plugins on every channel, B-bad (b) to all three.
	fixedX, fixedB := chOrder("X-bad", 6, 1, 7, "fay"), chOrder("B-bad", 6, 1, 8, "fay")
	store(t, rdb, fixedX, fixedB)
	res = mustRun(t, 0, "deadletter", "replay", "-config", cfg, "-all")
	wantLine(t, res.stdout, "replayed 2 of 2 entries: 5 applied, 0 already done, 0 dead-lettered again")
	hashHas(t, rdb, "X-bad", append(doneOf(everyChannel...), keyspace.DeadOrderField)...)
	hashHas(t, rdb, "B-bad", append(doneOf(bundled...), keyspace.DeadOrderField)...)
	if got := deadLetters(t, rdb); len(got) != 0 {
		t.Errorf("dead letters after the replay = %q, want none", got)
	}
	diffState(t, pluginState(t, rdb), channelsState(
		[]publish.Order{downA, downB, fixedX, fixedB},
		[]publish.Order{histB, downB, fixedB}))
}
