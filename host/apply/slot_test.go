package apply

import (
	"context"
	"testing"

	"github.com/eventhost/eventhost/host/internal/redistest"
)

// TestSlotOfMatchesRedis checks slotOf and every slot's record tag against
// the cluster's own CLUSTER KEYSLOT.
func TestSlotOfMatchesRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	// CLUSTER KEYSLOT needs cluster mode, not slots: one node will do.
	srv := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	rdb := srv.Client()
	ctx := context.Background()
	keys := []string{"", "a", "sales_summary", "purchase_order_details:42", "{user1000}.following", "foo{}{bar}",
		"foo{{bar}}zap", "foo{bar}{zap}", "{", "}", "{}", "x{y", "sales_histogram:time_of_day:concert", "ü-ñ"}
	pipe := rdb.Pipeline()
	for _, k := range keys {
		pipe.Do(ctx, "CLUSTER", "KEYSLOT", k)
	}
	tags := slotTags()
	for _, tag := range tags {
		pipe.Do(ctx, "CLUSTER", "KEYSLOT", recordKey(tag))
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	for i, k := range keys {
		want, _ := cmds[i].(interface{ Int64() (int64, error) }).Int64()
		if got := slotOf(k); int64(got) != want {
			t.Errorf("slotOf(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
	}
	longest := ""
	for s, tag := range tags {
		got, _ := cmds[len(keys)+s].(interface{ Int64() (int64, error) }).Int64()
		if got != int64(s) {
			t.Fatalf("record key %s is in slot %d, want %d", recordKey(tag), got, s)
		}
		if len(tag) > len(longest) {
			longest = tag
		}
	}
	if len(longest) > 4 {
		t.Errorf("longest slot tag %q: want at most 4 characters", longest)
	}
}
