package redistest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a private Redis Cluster: masters, each with one replica.
type Cluster struct {
	t     testing.TB
	Nodes []*Server
}

// StartCluster starts a cluster of masters masters with one replica each
// (redis-cli --cluster create), and waits until every node reports the
// cluster ok. Node timeouts are short so that a killed master's replica
// takes over within seconds.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	args := []string{"--cluster", "create"}
	for range 2 * masters {
		s := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		c.Nodes = append(c.Nodes, s)
		args = append(args, s.Addr)
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	cmd := exec.Command("redis-cli", args...)
	cmd.Stderr = os.Stderr
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range c.Nodes {
		n := redis.NewClient(&redis.Options{Addr: s.Addr})
		for {
			// Ok, and a replica done with its first sync: a WAIT right
			// after start-up must not time out.
			info, _ := n.ClusterInfo(ctx).Result()
			repl, _ := n.Info(ctx, "replication").Result()
			if strings.Contains(info, "cluster_state:ok") && (strings.Contains(repl, "role:master") || strings.Contains(repl, "master_link_status:up")) {
				break
			}
			select {
			case <-ctx.Done():
				_ = n.Close()
				t.Fatalf("cluster node %s not ok within 30s:\n%s", s.Addr, info)
			case <-time.After(50 * time.Millisecond):
			}
		}
		_ = n.Close()
	}
	return c
}

// Addrs are the nodes' addresses, the seeds a client starts from.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr
	}
	return out
}

// Client returns a cluster client, closed when the test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}
