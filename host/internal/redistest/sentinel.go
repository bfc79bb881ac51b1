package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelSet is a master, one replica of it and three sentinels watching
// it under MasterName, all private to the test. The sentinels declare the
// master down after a second without an answer, so a killed master is
// replaced within a few seconds.
type SentinelSet struct {
	MasterName string
	Master     *Server
	Replica    *Server
	Sentinels  []*Server
}

// StartSentinel starts a SentinelSet and waits until every sentinel knows
// the replica and the other sentinels, so that a failover can happen.
func StartSentinel(t testing.TB) *SentinelSet {
	t.Helper()
	set := &SentinelSet{MasterName: "eventhost-test"}
	set.Master = Start(t)
	host, port, _ := strings.Cut(set.Master.Addr, ":")
	set.Replica = Start(t, "--replicaof", host, port)
	for range 3 {
		conf := filepath.Join(t.TempDir(), "sentinel.conf")
		rules := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s 2\nsentinel down-after-milliseconds %[1]s 1000\nsentinel failover-timeout %[1]s 10000\n", set.MasterName, host, port)
		if err := os.WriteFile(conf, []byte(rules), 0o600); err != nil {
			t.Fatal(err)
		}
		s := start(t, nil, nil, func(port string) []string { return []string{conf, "--sentinel", "--port", port} }, nil)
		set.Sentinels = append(set.Sentinels, s)
	}
	set.waitKnown(t)
	return set
}

// SentinelAddrs are the sentinels' addresses.
func (set *SentinelSet) SentinelAddrs() []string {
	out := make([]string, len(set.Sentinels))
	for i, s := range set.Sentinels {
		out[i] = s.Addr
	}
	return out
}

// MasterAddr asks the first sentinel that answers where the master is now.
func (set *SentinelSet) MasterAddr(ctx context.Context) (string, error) {
	var last error
	for _, s := range set.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
		addr, err := c.GetMasterAddrByName(ctx, set.MasterName).Result()
		_ = c.Close()
		if err == nil {
			return addr[0] + ":" + addr[1], nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel named the master: %w", last)
}

// waitKnown waits until each sentinel sees the replica (with its link up)
// and the two other sentinels.
func (set *SentinelSet) waitKnown(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range set.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
		for {
			replicas, _ := c.Replicas(ctx, set.MasterName).Result()
			sentinels, _ := c.Sentinels(ctx, set.MasterName).Result()
			if len(replicas) == 1 && replicas[0]["master-link-status"] == "ok" && len(sentinels) == 2 {
				break
			}
			select {
			case <-ctx.Done():
				_ = c.Close()
				t.Fatalf("sentinel %s does not know the replica and the other sentinels within 30s: replicas %v, sentinels %d", s.Addr, replicas, len(sentinels))
			case <-time.After(50 * time.Millisecond):
			}
		}
		_ = c.Close()
	}
}
