package pipeline

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/eventhost/eventhost/host/rediserr"
)

// retry runs op until it succeeds or ctx ends. Whatever Redis answers, the
// host never gives up on a batch: Redis unreachable, out of memory, not
// persisting, read-only or refusing our user pauses the pipeline (not ready,
// with the reason) while op is retried with backoff, and it resumes by
// itself once Redis takes the batch.
func (p *Pipeline) retry(ctx context.Context, what string, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 20 * time.Millisecond
	b.MaxInterval = 2 * time.Second
	b.MaxElapsedTime = 0
	b.Reset() // the constructor already fixed the first interval at its default
	for {
		err := op()
		class, reason := rediserr.Classify(err)
		switch {
		case class == rediserr.Fine:
			p.pause.resume(p.logger, p.metrics)
			return nil
		case class == rediserr.Stopped || ctx.Err() != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		p.metrics.RedisErrors.WithLabelValues(what).Inc()
		p.outcomes.redisRetries.Add(1)
		p.pause.pause(p.logger, p.metrics, reason, err)
		wait := b.NextBackOff()
		p.logger.Error("redis refused the batch; paused, retrying", "op", what, "reason", reason, "error", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
