// The cluster path's transport: commands run on the master of their slot,
// each master's in one pipeline, then WAIT (see cluster.go).

package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

type replicaCount struct {
	n    int
	seen time.Time
}

// nodeCmd is one command run on the master of key's slot: a script (keys,
// argv) or an XADD.
type nodeCmd struct {
	key    string
	script *redis.Script
	keys   []string
	argv   []any
	xadd   *redis.XAddArgs
	// args is a plain command; a WRONGTYPE reply to it is the caller's.
	args []any

	cmd  *redis.Cmd
	xcmd *redis.StringCmd
}

// run runs cmds on the masters of their slots, each master's in one
// pipeline, the masters in parallel. With wait > 0 each pipeline ends with
// WAIT, so that run returns once each master's writes reached wait of its
// replicas (or all it has, when it has fewer). A redirect (MOVED, ASK: a
// slot moved) refreshes the client's slot map and fails the call; the
// caller's retry is exact thanks to the records.
func (c *clusterApply) run(ctx context.Context, cmds []nodeCmd, wait int, waitTimeout time.Duration) error {
	type group struct {
		node *redis.Client
		cmds []*nodeCmd
	}
	var groups []*group
	byAddr := map[string]*group{}
	for i := range cmds {
		node, err := c.cc.MasterForKey(ctx, cmds[i].key)
		if err != nil {
			return fmt.Errorf("find the master of %s: %w", cmds[i].key, err)
		}
		g := byAddr[node.Options().Addr]
		if g == nil {
			g = &group{node: node}
			byAddr[node.Options().Addr] = g
			groups = append(groups, g)
		}
		g.cmds = append(g.cmds, &cmds[i])
	}
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.runOn(ctx, g.node, g.cmds, wait, waitTimeout)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.cc.ReloadState(ctx)
		return err
	}
	return nil
}

// runOn runs cmds on one master, loading a script it lacks (a promoted
// replica may) and running again the commands that needed it.
func (c *clusterApply) runOn(ctx context.Context, node *redis.Client, cmds []*nodeCmd, wait int, waitTimeout time.Duration) error {
	addr := node.Options().Addr
	for try := 0; ; try++ {
		pipe := node.Pipeline()
		for _, nc := range cmds {
			switch {
			case nc.xadd != nil:
				nc.xcmd = pipe.XAdd(ctx, nc.xadd)
			case nc.args != nil:
				nc.cmd = pipe.Do(ctx, nc.args...)
			default:
				nc.cmd = nc.script.EvalSha(ctx, pipe, nc.keys, nc.argv...)
			}
		}
		want := 0
		var waitCmd *redis.Cmd
		if wait > 0 {
			want = min(wait, c.replicaCount(ctx, node, wait))
			if want > 0 {
				waitCmd = pipe.Do(ctx, "WAIT", want, waitTimeout.Milliseconds())
			}
		}
		_, _ = pipe.Exec(ctx)
		var missing []*nodeCmd
		for _, nc := range cmds {
			var err error
			if nc.xcmd != nil {
				err = nc.xcmd.Err()
			} else {
				err = nc.cmd.Err()
			}
			switch {
			case err == nil:
			case nc.args != nil && redis.HasErrorPrefix(err, "WRONGTYPE"):
			case redis.HasErrorPrefix(err, "NOSCRIPT") && try == 0:
				missing = append(missing, nc)
			default:
				return fmt.Errorf("on %s: %w", addr, err)
			}
		}
		if len(missing) > 0 {
			for _, s := range []*redis.Script{c.script, c.check, c.mark} {
				if err := s.Load(ctx, node).Err(); err != nil {
					return fmt.Errorf("load script on %s: %w", addr, err)
				}
			}
			cmds = missing
			continue
		}
		if waitCmd == nil {
			return nil
		}
		got, err := waitCmd.Int64()
		if err != nil {
			return fmt.Errorf("WAIT on %s: %w", addr, err)
		}
		if int(got) < want {
			// The master may have lost a replica meanwhile: ask again
			// next time, and retry.
			c.forgetReplicas(addr)
			return replicaShortfall(fmt.Sprintf("NOREPLICAS writes on %s reached %d of %d replicas within %s (redis.cluster.wait_timeout); retrying", addr, got, want, waitTimeout))
		}
		return nil
	}
}

// replicaShortfall is a WAIT that fewer replicas acknowledged than asked
// for: a Redis reply in all but name, classified (rediserr) like the
// NOREPLICAS error a master with min-replicas-to-write gives.
type replicaShortfall string

func (e replicaShortfall) Error() string { return string(e) }

// RedisError marks it as a reply from Redis (redis.Error).
func (replicaShortfall) RedisError() {}

// replicaCountTTL is how long a master's replica count is trusted.
const replicaCountTTL = 2 * time.Second

// replicaCount returns how many replicas node has connected, asking at most
// every replicaCountTTL; on error it assumes want.
func (c *clusterApply) replicaCount(ctx context.Context, node *redis.Client, want int) int {
	addr := node.Options().Addr
	c.mu.Lock()
	rc, ok := c.replicas[addr]
	c.mu.Unlock()
	if ok && time.Since(rc.seen) < replicaCountTTL {
		return rc.n
	}
	info, err := node.Info(ctx, "replication").Result()
	if err != nil {
		return want
	}
	// A replica still loading its first copy is connected but does not
	// acknowledge: count those online only.
	n := 0
	for _, line := range strings.Split(info, "\n") {
		if strings.HasPrefix(line, "slave") && strings.Contains(line, "state=online") {
			n++
		}
	}
	c.mu.Lock()
	c.replicas[addr] = replicaCount{n: n, seen: time.Now()}
	c.mu.Unlock()
	return n
}

func (c *clusterApply) forgetReplicas(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.replicas, addr)
}
