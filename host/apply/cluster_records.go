// The idempotency records' upkeep on a Redis Cluster: deleting a pair's
// entries RecordKeep after its marker, and sweeping what dead hosts left
// (see cluster.go).

package apply

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/orders"
)

// cleanup is record entries to delete once due.
type cleanup struct {
	due time.Time
	key string
	// fields are the record fields, packed (packFields): a host keeps
	// RecordKeep's worth of them, and a byte slice is one object the
	// garbage collector need not scan, where strings are one pointer each.
	fields []byte
}

// packFields packs fields into one byte slice: each as a uvarint length
// and its bytes.
func packFields(fields []string) []byte {
	n := 0
	for _, f := range fields {
		n += binary.MaxVarintLen64 + len(f)
	}
	b := make([]byte, 0, n)
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// unpackFields returns the fields packFields packed.
func unpackFields(b []byte) []string {
	var out []string
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		out = append(out, string(b[k:k+int(n)]))
		b = b[k+int(n):]
	}
	return out
}

// scheduleCleanups queues the record entries of the writes now marked done
// (by this host or another) for deletion once RecordKeep has passed.
func (r *clusterRun) scheduleCleanups(live []int, res Result) {
	byKey := map[string][]string{}
	var keys []string
	for _, w := range live {
		if st := res.Statuses[w]; st != Applied && st != AlreadyDone {
			continue
		}
		for _, s := range r.recorded[w] {
			k := recordKey(r.c.tags[s])
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], pairField(r.writes[w]))
		}
	}
	due := r.a.now().Add(RecordKeep)
	var cls []cleanup
	for _, k := range keys {
		cls = append(cls, cleanup{due: due, key: k, fields: packFields(byKey[k])})
	}
	r.c.requeue(cls)
}

// dueCleanups takes the cleanups due at now.
func (c *clusterApply) dueCleanups(now time.Time) []cleanup {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for n < len(c.cleanups) && !c.cleanups[n].due.After(now) {
		n++
	}
	due := slices.Clone(c.cleanups[:n])
	c.cleanups = slices.Delete(c.cleanups, 0, n)
	return due
}

// requeue puts cleanups back in due order.
func (c *clusterApply) requeue(cls []cleanup) {
	if len(cls) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleanups = append(c.cleanups, cls...)
	slices.SortStableFunc(c.cleanups, func(a, b cleanup) int { return a.due.Compare(b.due) })
}

// SweepRecords deletes, on a Redis Cluster, the idempotency record entries
// a host lost track of by dying before it deleted them: those of pairs
// marked done more than RecordKeep ago, and of orders deleted since. It
// returns how many entries it deleted and how many are left. Elsewhere it
// does nothing.
func (a *Applier) SweepRecords(ctx context.Context) (deleted, left int, err error) {
	if a.cluster == nil {
		return 0, 0, nil
	}
	c := a.cluster
	keys := make([]string, len(c.tags))
	for s, tag := range c.tags {
		keys[s] = recordKey(tag)
	}
	pipe := c.cc.Pipeline()
	lens := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		lens[i] = pipe.HLen(ctx, k)
	}
	if cmds, _ := pipe.Exec(ctx); orders.RoundTripError(cmds) != nil {
		return 0, 0, fmt.Errorf("sweep records: %w", orders.RoundTripError(cmds))
	}
	now := a.now()
	for i, k := range keys {
		if lens[i].Val() == 0 {
			continue
		}
		entries, err := c.cc.HGetAll(ctx, k).Result()
		if err != nil {
			return deleted, left, fmt.Errorf("sweep record %s: %w", k, err)
		}
		type entry struct {
			field string
			at    int64
			cmd   *redis.SliceCmd
		}
		var es []entry
		pipe := c.cc.Pipeline()
		for f, v := range entries {
			marker, order, ok := strings.Cut(f, " ")
			at, _ := strconv.ParseInt(v, 10, 64)
			if !ok {
				continue
			}
			es = append(es, entry{field: f, at: at, cmd: pipe.HMGet(ctx, order, "ts", marker)})
		}
		if cmds, _ := pipe.Exec(ctx); orders.RoundTripError(cmds) != nil {
			return deleted, left, fmt.Errorf("sweep record %s: %w", k, orders.RoundTripError(cmds))
		}
		cut := now.Add(-RecordKeep).UnixMicro()
		var drop []string
		for _, e := range es {
			vals, err := e.cmd.Result()
			switch {
			case err != nil || vals[0] == nil:
				// The order is gone; so is any attempt that read it
				// before it went, once RecordKeep has passed.
				if e.at < cut {
					drop = append(drop, e.field)
				}
			case vals[1] != nil:
				if at, _ := strconv.ParseInt(fmt.Sprint(vals[1]), 10, 64); at < cut {
					drop = append(drop, e.field)
				}
			}
		}
		left += len(entries) - len(drop)
		if len(drop) > 0 {
			if err := c.cc.HDel(ctx, k, drop...).Err(); err != nil {
				return deleted, left, fmt.Errorf("sweep record %s: %w", k, err)
			}
			deleted += len(drop)
		}
	}
	return deleted, left, nil
}

// FlushRecordCleanups deletes the idempotency record entries whose time has
// come (RecordKeep after their pairs were marked done), as every Apply does
// first: a host with no batch to apply calls it now and then, so that the
// records shrink when the orders stop. Elsewhere it does nothing.
func (a *Applier) FlushRecordCleanups(ctx context.Context) error {
	if a.cluster == nil {
		return nil
	}
	due := a.cluster.dueCleanups(a.now())
	if len(due) == 0 {
		return nil
	}
	pipe := a.cluster.cc.Pipeline()
	for _, cl := range due {
		pipe.HDel(ctx, cl.key, unpackFields(cl.fields)...)
	}
	cmds, _ := pipe.Exec(ctx)
	if err := orders.RoundTripError(cmds); err != nil {
		a.cluster.requeue(due)
		return fmt.Errorf("delete record entries: %w", err)
	}
	return nil
}
