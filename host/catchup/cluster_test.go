package catchup_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/eventhost/eventhost/host/catchup"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
)

// On a cluster the scan and the history marking walk every master: a
// cluster client alone would SCAN one node only and refuse a script over
// keys of several slots (CROSSSLOT).
func TestClusterScanAndMarkEveryMaster(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test against redis-server; skipped with -short")
	}
	ctx := t.Context()
	rdb := redistest.StartCluster(t, 3).Client()
	want := map[string][]string{}
	for i := range 300 {
		id := fmt.Sprint(i)
		fields := []any{"ts", "1627000000", "qty", "1", "cost", "1.00", "event", "e", "who", "w"}
		if i%3 == 0 {
			fields = append(fields, keyspace.DoneField("a"), "1")
		} else {
			want[id] = []string{"a"}
		}
		if err := rdb.HSet(ctx, prefix+id, fields...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	s := catchup.NewScanner(rdb, prefix)
	s.Count = 20
	got := map[string][]string{}
	st, err := s.Scan(ctx, []catchup.Want{{Plugin: "a"}}, func(found []catchup.Unfinished) error {
		for _, u := range found {
			got[u.ID] = u.Plugins
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || st.Keys != 300 {
		t.Errorf("scan saw %d keys and found %d unfinished, want 300 and %d", st.Keys, len(got), len(want))
	}

	// A plugin enabled now takes every stored order, on every master, as
	// history.
	regs, err := catchup.NewRegistry(rdb, s).EnableAll(ctx, []string{"b"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		v, err := rdb.HGet(ctx, prefix+fmt.Sprint(i), keyspace.HistoryField("b")).Result()
		if err != nil || v != regs["b"].Token {
			t.Fatalf("order %d: history marker of b = %q, %v; want the token %q", i, v, err, regs["b"].Token)
		}
	}
}
