package catchup_test

import (
	"reflect"
	"testing"

	"github.com/eventhost/eventhost/host/catchup"
	"github.com/eventhost/eventhost/host/keyspace"
)

// TestReviewScanListAndANameWithASpace: plugins "x", "y" and "x y" (config
// allows a space in a name; DoneList keeps such a name out of a list). An
// order whose list names x and y has not been done by "x y", as the Go
// readers say (keyspace.Done), but scan.lua searches " x y " in
// "<ms> x y " and finds it: catch-up never gives the order to "x y".
func TestReviewScanListAndANameWithASpace(t *testing.T) {
	ctx, rdb := start(t)
	order(t, ctx, rdb, "xy")
	const list = "1700000000000 x y"
	rdb.HSet(ctx, prefix+"xy", keyspace.DoneListField, list)
	if keyspace.Done(map[string]string{keyspace.DoneListField: list}, "x y") {
		t.Fatal(`keyspace.Done says "x y" is done`)
	}
	s := catchup.NewScanner(rdb, prefix)
	got, _ := scan(t, ctx, s, catchup.Want{Plugin: "x"}, catchup.Want{Plugin: "y"}, catchup.Want{Plugin: "x y"})
	if want := map[string][]string{"xy": {"x y"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("unfinished = %v, want %v", got, want)
	}
}
