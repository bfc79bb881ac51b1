package redisconn

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ForEachMaster calls fn with a client for each master that holds data, one
// after the other: rdb itself for a single node or Sentinel's master, each
// master node's client for a cluster. Walks that must see every key (SCAN)
// go through it, since a cluster client sends a keyless command to one
// node only.
func ForEachMaster(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, node redis.UniversalClient) error) error {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return fn(ctx, rdb)
	}
	// go-redis calls ForEachMaster's function on all masters at once;
	// collect them, then walk them in turn so Redis is asked one thing at
	// a time, as on a single node.
	var mu sync.Mutex
	var nodes []*redis.Client
	if err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		nodes = append(nodes, c)
		return nil
	}); err != nil {
		return fmt.Errorf("list cluster masters: %w", err)
	}
	for _, n := range nodes {
		if err := fn(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// Cluster reports whether rdb talks to a Redis Cluster, where one script
// or transaction may only touch keys of one hash slot.
func Cluster(rdb redis.UniversalClient) bool {
	_, ok := rdb.(*redis.ClusterClient)
	return ok
}
