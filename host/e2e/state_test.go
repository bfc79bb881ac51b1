package e2e

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
	"github.com/eventhost/eventhost/host/redisconn"
)

// Checks of the state a run leaves in Redis: every key against the tutorial's
// listeners replayed (see model_test.go), the order hashes and their markers,
// the dead letters, the stream group, a Cluster's nodes; and how two sets of
// order ids differ.

// checkTutorialState checks that every key of rdb's database other than the
// order hashes and the dead-letter stream is exactly what the tutorial's
// listeners leave for os, replayed in database 1 of the same server.
func checkTutorialState(t *testing.T, rdb *redis.Client, os []publish.Order) {
	t.Helper()
	got, want := tutorialStates(t, rdb, os)
	diffState(t, got, want)
}

// checkTutorialStateAnyOrder is checkTutorialState for orders applied in
// another order than published (several hosts, catch-up): the float totals
// then differ from the replay's in the last digits, as summing floats in
// another order does, so they are checked against exact cent sums instead.
func checkTutorialStateAnyOrder(t *testing.T, rdb *redis.Client, os []publish.Order) {
	t.Helper()
	got, want := tutorialStates(t, rdb, os)
	checkSalesTotals(t, got, os)
	diffState(t, withoutFloats(got), withoutFloats(want))
}

// tutorialStates returns rdb's state without eventhost's own keys and the
// order hashes, and the state the tutorial's listeners leave for os.
func tutorialStates(t *testing.T, rdb *redis.Client, os []publish.Order) (got, want map[string]value) {
	t.Helper()
	ctx := context.Background()
	opt := *rdb.Options()
	opt.DB = 1
	ref := redis.NewClient(&opt)
	defer ref.Close()
	if err := ref.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	replayTutorial(t, ref, os, "u8")
	want = dump(t, ref, "")
	checkSalesTotals(t, want, os)
	diffState(t, withoutFloats(want), modelState(os, 8))

	got = dump(t, rdb, "")
	delete(got, keyspace.RegistryKey) // checked where the plugins are known
	if got[channel].Type == "stream" {
		delete(got, channel) // the stream source's entries: the producer's data
	}
	for k := range got {
		// The shards of a sharded stream source: the producer's data too.
		shard := got[k].Type == "stream" && strings.HasPrefix(k, channel+":{")
		if strings.HasPrefix(k, orderPrefix) || k == deadLetterStream || shard {
			delete(got, k)
		}
	}
	return got, want
}

// checkOrderHashes checks that each order in os holds its five fields as
// published plus exactly the done markers of plugins and the extra marker
// fields (any value).
func checkOrderHashes(t *testing.T, rdb *redis.Client, os []publish.Order, plugins []string, extra ...string) {
	t.Helper()
	hashes := orderHashes(t, rdb, os)
	bad := 0
	for i, o := range os {
		got := hashes[i]
		want := o.Hash()
		for _, p := range plugins {
			want[keyspace.DoneField(p)] = "(set)"
		}
		for _, f := range extra {
			want[f] = "(set)"
		}
		ok := len(got) == len(want)
		for f, v := range want {
			g, has := got[f]
			ok = ok && has && (g == v || v == "(set)")
		}
		if !ok && bad < 10 {
			bad++
			t.Errorf("%s%s = %v, want %v", orderPrefix, o.ID, got, want)
		}
	}
}

// checkOrderHash checks an order hash holds its five fields and the done
// markers of plugins: on one node one list of them (keyspace.DoneList), as
// one batch marks them; on a cluster (list false), which marks a pair at a
// time, a field each.
func checkOrderHash(t *testing.T, key string, v value, list bool, plugins []string) {
	t.Helper()
	var fields []string
	var doneList string
	for _, line := range strings.Split(v.Data, "\n") {
		f, val, _ := strings.Cut(line, "=")
		fields = append(fields, f)
		if f == keyspace.DoneListField {
			doneList = val
		}
	}
	want := []string{"cost", "event", "qty", "ts", "who"}
	if list {
		want = append(want, keyspace.DoneListField)
	} else {
		for _, p := range plugins {
			want = append(want, keyspace.DoneField(p))
		}
	}
	sort.Strings(want)
	if strings.Join(fields, ",") != strings.Join(want, ",") {
		t.Errorf("%s has fields %v, want %v", key, fields, want)
	}
	if names := slices.Sorted(keyspace.DoneListPlugins(doneList)); list && !reflect.DeepEqual(names, slices.Sorted(slices.Values(plugins))) {
		t.Errorf("%s's list of done plugins %q names %v, want %v", key, doneList, names, plugins)
	}
}

// historyMarkers are the history marker fields of plugins.
func historyMarkers(plugins ...string) []string {
	out := make([]string, len(plugins))
	for i, p := range plugins {
		out[i] = keyspace.HistoryField(p)
	}
	return out
}

func checkNoDeadLetters(t *testing.T, rdb *redis.Client) {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), deadLetterStream, "-", "+").Result()
	if err != nil {
		t.Fatalf("read dead letters: %v", err)
	}
	for i, m := range msgs {
		if i == 10 {
			t.Errorf("… %d dead letters in all", len(msgs))
			break
		}
		t.Errorf("unexpected dead letter %s: %v", m.ID, m.Values)
	}
}

// checkStreamSettled checks that the group holds no pending entry: every
// entry was acknowledged with its effects.
func checkStreamSettled(t *testing.T, rdb *redis.Client) {
	t.Helper()
	p, err := rdb.XPending(context.Background(), channel, streamGroup).Result()
	if err != nil {
		t.Fatalf("xpending: %v", err)
	}
	if p.Count != 0 {
		t.Errorf("%d entries still pending in group %s (%v), want 0", p.Count, streamGroup, p.Consumers)
	}
}

// dumpCluster reads every key of every master.
func dumpCluster(t *testing.T, ctx context.Context, cc *redis.ClusterClient) map[string]value {
	t.Helper()
	out := map[string]value{}
	err := redisconn.ForEachMaster(ctx, cc, func(ctx context.Context, node redis.UniversalClient) error {
		for k, v := range dump(t, node.(*redis.Client), "") {
			out[k] = v
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkClusterState compares every key of the cluster with the tutorial's
// listeners replayed over published (ids deduplicated) on a single server,
// and checks the idempotency records: each entry names a pair marked
// done. It returns the number of record entries. With registry it checks
// and leaves out the plugin registry (Pub/Sub's catch-up writes it).
func checkClusterState(t *testing.T, ctx context.Context, cc *redis.ClusterClient, published []publish.Order, registry bool) int {
	t.Helper()
	var unique []publish.Order
	seen := map[string]bool{}
	for _, o := range published {
		if !seen[o.ID] {
			seen[o.ID] = true
			unique = append(unique, o)
		}
	}
	refSrv := redistest.Start(t)
	ref := refSrv.Client()
	replayTutorial(t, ref, unique, "u8")
	want := dump(t, ref, "")
	checkSalesTotals(t, want, unique)
	diffState(t, withoutFloats(want), modelState(unique, 8))

	got := dumpCluster(t, ctx, cc)
	if registry { // the catch-up's: Pub/Sub only
		takeRegistry(t, got, bundled...)
	}
	records := 0
	for k, v := range got {
		if !strings.HasPrefix(k, keyspace.RecordPrefix) {
			continue
		}
		delete(got, k)
		for _, line := range strings.Split(v.Data, "\n") {
			field, _, _ := strings.Cut(line, "=")
			marker, order, _ := strings.Cut(field, " ")
			if h, ok := got[order]; !ok || !strings.Contains(h.Data, marker+"=") {
				t.Errorf("record %s holds %q, but that order is not marked done", k, field)
			}
			records++
		}
	}
	orderHashes := 0
	for k, v := range got {
		if strings.HasPrefix(k, orderPrefix) {
			checkOrderHash(t, k, v, false, bundled)
			delete(got, k)
			orderHashes++
		}
	}
	if orderHashes != len(unique) {
		t.Errorf("%d order hashes, want %d", orderHashes, len(unique))
	}
	delete(got, channel) // the stream source's stream, if any
	diffState(t, got, want)
	t.Logf("%d orders: %d keys identical to the tutorial's; %d idempotency record entries left, all of pairs marked done", len(unique), len(want), records)
	return records
}

func masterAddr(t *testing.T, ctx context.Context, cc *redis.ClusterClient, key string) string {
	t.Helper()
	node, err := cc.MasterForKey(ctx, key)
	if err != nil {
		t.Fatalf("master of %s: %v", key, err)
	}
	return node.Options().Addr
}

// idSetDiff describes how sorted lists got and want differ, duplicates
// included.
func idSetDiff(got, want []string) string {
	count := map[string]int{}
	for _, s := range got {
		count[s]++
	}
	for _, s := range want {
		count[s]--
	}
	var extra, missing []string
	for s, n := range count {
		switch {
		case n > 0:
			extra = append(extra, s+"×"+strconv.Itoa(n))
		case n < 0:
			missing = append(missing, s)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	return fmt.Sprintf("  extra (or repeated): %s\n  missing: %s", firstFew(extra, 10), firstFew(missing, 10))
}

func firstFew(s []string, n int) string {
	if len(s) > n {
		return strings.Join(s[:n], " ") + fmt.Sprintf(" … (%d in all)", len(s))
	}
	return strings.Join(s, " ")
}

// matchingIDs returns the ids of published that contain match, and the others.
func matchingIDs(published []publish.Order, match string) (hit, miss map[string]bool) {
	hit, miss = map[string]bool{}, map[string]bool{}
	for _, o := range published {
		if strings.Contains(o.ID, match) {
			hit[o.ID] = true
		} else {
			miss[o.ID] = true
		}
	}
	return hit, miss
}

// allIDs returns the ids of published.
func allIDs(published []publish.Order) map[string]bool {
	out := make(map[string]bool, len(published))
	for _, o := range published {
		out[o.ID] = true
	}
	return out
}

// orderHashes reads the hash of each order of os, in one pipeline.
// doneView returns fields, an order hash, with its list of done plugins
// (keyspace.DoneListField) read as a done marker each, holding the list's
// time in µs: what a plugin is done for, whichever form marks it. A plugin
// marked by both forms gets the value "(twice)", which no test wants.
func doneView(fields map[string]string) map[string]string {
	list, ok := fields[keyspace.DoneListField]
	if !ok {
		return fields
	}
	out := make(map[string]string, len(fields)+2)
	for f, v := range fields {
		if f != keyspace.DoneListField {
			out[f] = v
		}
	}
	at := list // no time: kept as it is, which no test takes for one
	if ms, ok := keyspace.DoneListTime(list); ok {
		at = strconv.FormatInt(ms*1000, 10)
	}
	for p := range keyspace.DoneListPlugins(list) {
		if _, dup := out[keyspace.DoneField(p)]; dup {
			at = "(twice)"
		}
		out[keyspace.DoneField(p)] = at
	}
	return out
}

// orderHashes reads the hashes of os, each as doneView shows it.
func orderHashes(t *testing.T, rdb *redis.Client, os []publish.Order) []map[string]string {
	t.Helper()
	ctx := context.Background()
	pipe := rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(os))
	for i, o := range os {
		cmds[i] = pipe.HGetAll(ctx, orderPrefix+o.ID)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("read order hashes: %v", err)
	}
	out := make([]map[string]string, len(os))
	for i, c := range cmds {
		out[i] = doneView(c.Val())
	}
	return out
}
