package pipeline

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Outcomes counts what the pipeline did, for the code that acts on it:
// backfill and replay report their pairs' fates from it, and the systemd
// watchdog reads its signs of life. Metrics count the same events for
// people; they are an output, never read back. The zero value counts from
// zero; the pipeline bumps it where it counts its metrics.
type Outcomes struct {
	alreadyDone, deadLettered       atomic.Int64
	batchesStarted, batchesFinished atomic.Int64
	redisRetries                    atomic.Int64

	mu      sync.Mutex
	applied map[string]int64 // by plugin
}

// Snapshot is Outcomes at one moment. A (plugin, order) pair ends in exactly
// one of Applied, AlreadyDone and DeadLettered, except that an effect Redis
// refuses half way counts the pair as applied and as dead-lettered.
type Snapshot struct {
	// Applied is how many pairs had their effects applied and their done
	// marker set, by plugin; nil when none.
	Applied map[string]int64
	// AlreadyDone is how many pairs were passed over because their done
	// marker was set already, when loaded or when applied.
	AlreadyDone int64
	// DeadLettered is how many dead letters were written: bad orders
	// (one per order) and orders a plugin failed or Redis refused.
	DeadLettered int64
	// BatchesStarted and BatchesFinished count batches gathered and
	// applied; the difference is in flight.
	BatchesStarted, BatchesFinished int64
	// RedisRetries is how often Redis refused a load or an apply that the
	// pipeline then tried again.
	RedisRetries int64
}

// AppliedTotal is Applied summed over the plugins.
func (s Snapshot) AppliedTotal() int64 {
	var n int64
	for _, v := range s.Applied {
		n += v
	}
	return n
}

// Outcomes returns what the pipeline has done since New. It is safe to call
// while Run runs.
func (p *Pipeline) Outcomes() Snapshot { return p.outcomes.snapshot() }

func (o *Outcomes) snapshot() Snapshot {
	o.mu.Lock()
	applied := maps.Clone(o.applied)
	o.mu.Unlock()
	return Snapshot{
		Applied:         applied,
		AlreadyDone:     o.alreadyDone.Load(),
		DeadLettered:    o.deadLettered.Load(),
		BatchesStarted:  o.batchesStarted.Load(),
		BatchesFinished: o.batchesFinished.Load(),
		RedisRetries:    o.redisRetries.Load(),
	}
}

// addApplied counts n pairs of plugin applied; called once per plugin per
// batch, so the lock is not on the hot path.
func (o *Outcomes) addApplied(plugin string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.applied == nil {
		o.applied = map[string]int64{}
	}
	o.applied[plugin] += int64(n)
}
