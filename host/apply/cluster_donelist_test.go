package apply

import (
	"reflect"
	"testing"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/sdk"
)

// A cluster marks a pair at a time, with a field each, but reads the list
// a host on one Redis marks an order's plugins with (keyspace.DoneList):
// orders moved from one node to a cluster keep what they were counted for.
// The list names whole names: not "pq" for "p", nor "p pq" (a name with a
// space, which no list holds) though " p pq " is in the list's text (a
// review finding).
func TestClusterReadsADoneList(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	ctx := t.Context()
	cc := cl.Client()
	const key = "moved:order:o1"
	if err := cc.HSet(ctx, key, "ts", "1", keyspace.DoneListField, "1700000000000 p pq").Err(); err != nil {
		t.Fatal(err)
	}
	var writes []Write
	for _, p := range []string{"p", "q", "p pq"} {
		writes = append(writes, Write{OrderKey: key, Marker: keyspace.DoneField(p), Plugin: p, OrderID: "o1", Channel: "c",
			Effects: []sdk.Effect{{Command: "HINCRBY", Key: "moved:counts", Args: []string{p, "1"}}}})
	}
	res, err := New(cc, testDL).Apply(ctx, Batch{Writes: writes})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Status{AlreadyDone, Applied, Applied}; !reflect.DeepEqual(res.Statuses, want) {
		t.Fatalf("statuses %v, want %v (reasons %v)", res.Statuses, want, res.Reasons)
	}
	if got, want := cc.HGetAll(ctx, "moved:counts").Val(), map[string]string{"q": "1", "p pq": "1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	got := cc.HGetAll(ctx, key).Val()
	if got[keyspace.DoneListField] != "1700000000000 p pq" || got[keyspace.DoneField("q")] == "" || got[keyspace.DoneField("p pq")] == "" || len(got) != 4 {
		t.Errorf("order hash %v, want its ts, the list as it was and a field each for q and \"p pq\"", got)
	}
}
