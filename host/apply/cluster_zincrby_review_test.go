package apply

import (
	"strings"
	"testing"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/sdk"
)

// On a cluster too, a sorted-set member's summed increment that Redis
// cannot read as a double (two of 1e308) refuses the member's writes
// rather than failing a slot's script in its write phase.
func TestClusterZIncrBySumPastFloat64IsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	ctx := t.Context()
	cc := cl.Client()
	e308 := "1" + strings.Repeat("0", 308)
	var writes []Write
	for _, id := range []string{"o1", "o2"} {
		key := "zr:order:" + id
		if err := cc.HSet(ctx, key, "ts", "1").Err(); err != nil {
			t.Fatal(err)
		}
		writes = append(writes, Write{OrderKey: key, Marker: keyspace.DoneField("p"), Plugin: "p", OrderID: id, Channel: "c",
			Effects: []sdk.Effect{
				{Command: "SADD", Key: "zr:seen", Args: []string{id}},
				{Command: "ZINCRBY", Key: "zr:rank", Args: []string{e308, "m"}},
			}})
	}
	a := New(cc, testDL)
	res, err := a.Apply(ctx, Batch{Writes: writes})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for i, st := range res.Statuses {
		if st != Refused {
			t.Errorf("write %d: %v, want Refused", i, st)
		}
	}
	for _, k := range []string{"zr:seen", "zr:rank"} {
		if n := cc.Exists(ctx, k).Val(); n != 0 {
			t.Errorf("%s written by refused writes", k)
		}
	}
}
