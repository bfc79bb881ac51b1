package apply

import (
	"reflect"
	"testing"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/sdk"
)

// TestReviewClusterListAndANameWithASpace: on a cluster, intent.lua
// searches " <name> " in "<list> ": an order moved from one node whose
// list names plugins "x" and "y" is taken as done for plugin "x y" (a name
// config allows), which the list does not name (keyspace.Done): the pair
// is never counted.
func TestReviewClusterListAndANameWithASpace(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	ctx := t.Context()
	cc := cl.Client()
	const key = "moved:order:o1"
	const list = "1700000000000 x y"
	if err := cc.HSet(ctx, key, "ts", "1", keyspace.DoneListField, list).Err(); err != nil {
		t.Fatal(err)
	}
	if keyspace.Done(map[string]string{keyspace.DoneListField: list}, "x y") {
		t.Fatal(`keyspace.Done says "x y" is done`)
	}
	w := Write{OrderKey: key, Marker: keyspace.DoneField("x y"), Plugin: "x y", OrderID: "o1", Channel: "c",
		Effects: []sdk.Effect{{Command: "HINCRBY", Key: "moved:counts", Args: []string{"x y", "1"}}}}
	res, err := New(cc, testDL).Apply(ctx, Batch{Writes: []Write{w}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Status{Applied}; !reflect.DeepEqual(res.Statuses, want) {
		t.Errorf("statuses %v, want %v (reasons %v)", res.Statuses, want, res.Reasons)
	}
	if got, want := cc.HGetAll(ctx, "moved:counts").Val(), map[string]string{"x y": "1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
}
