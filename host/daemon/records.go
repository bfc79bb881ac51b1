package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/eventhost/eventhost/host/apply"
)

// recordSweepEvery is how often a host on a Redis Cluster sweeps the
// idempotency records (apply.Applier.SweepRecords) besides at start.
const recordSweepEvery = time.Minute

// sweepRecords deletes, at start and then every recordSweepEvery, the
// idempotency record entries that hosts which died left behind, so that
// the records stay bounded. It returns a function that stops it.
func (d *Daemon) sweepRecords(ctx context.Context, a *apply.Applier) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(recordSweepEvery)
		defer tick.Stop()
		for {
			deleted, left, err := a.SweepRecords(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				d.logger.Warn("sweep of the idempotency records failed; trying again later", "error", err)
			case err == nil:
				d.logger.Debug("swept the idempotency records", "deleted", deleted, "left", left)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}
