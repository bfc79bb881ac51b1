package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/eventhost/eventhost/host/apply"
)

// recordSweepEvery is how often a host on a Redis Cluster sweeps the
// idempotency records (apply.Applier.SweepRecords) besides at start, and
// recordFlushEvery how often it deletes its own due entries while no batch
// does it (apply.Applier.FlushRecordCleanups).
const (
	recordSweepEvery = time.Minute
	recordFlushEvery = time.Second
)

// sweepRecords deletes, at start and then every recordSweepEvery, the
// idempotency record entries that hosts which died left behind, and every
// recordFlushEvery the host's own due entries, so that the records stay
// bounded. It returns a function that stops it.
func (d *Daemon) sweepRecords(ctx context.Context, a *apply.Applier) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sweep := time.NewTicker(recordSweepEvery)
		defer sweep.Stop()
		flush := time.NewTicker(recordFlushEvery)
		defer flush.Stop()
		for {
			deleted, left, err := a.SweepRecords(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				d.logger.Warn("sweep of the idempotency records failed; trying again later", "error", err)
			case err == nil:
				d.logger.Debug("swept the idempotency records", "deleted", deleted, "left", left)
			}
			for swept := false; !swept; {
				select {
				case <-ctx.Done():
					return
				case <-flush.C:
					if err := a.FlushRecordCleanups(ctx); err != nil && ctx.Err() == nil {
						d.logger.Warn("deleting idempotency record entries failed; trying again later", "error", err)
					}
				case <-sweep.C:
					swept = true
				}
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}
