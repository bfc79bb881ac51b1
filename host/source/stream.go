package source

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/publish"
)

// StreamIDField is the entry field that holds the order id; eventhost
// publish -stream writes it.
const StreamIDField = publish.StreamIDField

// Stream reads order ids from a Redis Stream as one consumer of a group.
// An entry stays pending until the pipeline acknowledges it in the same
// atomic step that applies its effects; entries left pending by a consumer
// that stopped renewing them (a dead host) are claimed after claim_idle.
type Stream struct {
	rdb     redis.UniversalClient
	cfg     config.Stream
	count   int64
	logger  hclog.Logger
	metrics *metrics.Metrics
	// OnReady, when set, is called once the group exists and the entries
	// this consumer had pending are handed on.
	OnReady func()
	// Block is how long one read waits for new entries; shutdown waits at
	// most this long for the read in flight.
	Block time.Duration

	// handedOn holds the entries this consumer handed to the pipeline and
	// has not seen acknowledged yet. An entry pending with this consumer
	// but not in it was delivered in a reply that never arrived (Redis
	// died after sending it): renewing it would hide it forever.
	handedOn map[string]struct{}
	// recreate makes ensureGroup start a new group at "0" rather than at
	// the configured start: the old one vanished under a running host.
	recreate bool
}

// NewStream returns a stream source reading up to count entries at a time.
func NewStream(rdb redis.UniversalClient, cfg config.Stream, count int, logger hclog.Logger, m *metrics.Metrics) *Stream {
	// A read blocks at most a third of claim_idle, so that renewing this
	// consumer's leases is never late.
	block := min(500*time.Millisecond, max(cfg.ClaimIdle/3, 10*time.Millisecond))
	return &Stream{rdb: rdb, cfg: cfg, count: int64(count), logger: logger, metrics: m, Block: block,
		handedOn: map[string]struct{}{}}
}

// Run hands entries to out until ctx ends. Redis failures are retried with
// backoff, forever.
func (s *Stream) Run(ctx context.Context, out chan<- orders.Ref) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxInterval = 2 * time.Second
	b.MaxElapsedTime = 0
	b.Reset() // the constructor already fixed the first interval at its default
	ready := false
	// Keep the pipeline's backlog short: unread entries wait in the stream,
	// where any host of the group can take them.
	highWater := max(4*int(s.count), 64)
	var nextChores time.Time
	for ctx.Err() == nil {
		err := func() error {
			if !ready {
				if err := s.ensureGroup(ctx); err != nil {
					return err
				}
				if err := s.readOwnPending(ctx, out); err != nil {
					return err
				}
				ready = true
				s.logger.Info("reading stream", "stream", s.cfg.Key, "group", s.cfg.Group, "consumer", s.cfg.Consumer)
				if s.OnReady != nil {
					s.OnReady()
				}
			}
			if now := time.Now(); now.After(nextChores) {
				if err := s.chores(ctx, out); err != nil {
					return err
				}
				nextChores = now.Add(s.choreEvery())
			}
			if len(out) > highWater {
				select {
				case <-time.After(10 * time.Millisecond):
				case <-ctx.Done():
				}
				return nil
			}
			return s.readNew(ctx, out)
		}()
		if err == nil {
			b.Reset()
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if redis.HasErrorPrefix(err, "NOGROUP") {
			// The stream or the group was deleted. Whatever the new stream
			// holds is read from its start: done markers make a second
			// look at an entry harmless, a skipped one would be lost.
			s.logger.Warn("consumer group is gone; creating it again from the stream's start", "stream", s.cfg.Key, "group", s.cfg.Group)
			s.recreate = true
			ready = false
		}
		s.metrics.RedisErrors.WithLabelValues("stream").Inc()
		wait := b.NextBackOff()
		s.logger.Error("reading the stream failed; retrying", "stream", s.cfg.Key, "error", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	return nil
}

// choreEvery is how often leases are renewed and dead consumers' entries
// claimed: well inside claim_idle, so a live host's entries never look idle.
func (s *Stream) choreEvery() time.Duration {
	return max(s.cfg.ClaimIdle/3, 50*time.Millisecond)
}

func (s *Stream) ensureGroup(ctx context.Context) error {
	start := s.cfg.Start
	if s.recreate {
		start = "0"
	}
	err := s.rdb.XGroupCreateMkStream(ctx, s.cfg.Key, s.cfg.Group, start).Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return fmt.Errorf("create consumer group %s on %s: %w", s.cfg.Group, s.cfg.Key, err)
	}
	return nil
}

// readOwnPending hands on what this consumer read before and did not
// acknowledge (a host restarted under a fixed consumer name).
func (s *Stream) readOwnPending(ctx context.Context, out chan<- orders.Ref) error {
	start := "0"
	for {
		res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: s.cfg.Group, Consumer: s.cfg.Consumer, Streams: []string{s.cfg.Key, start}, Count: s.count,
		}).Result()
		if err != nil && err != redis.Nil {
			return fmt.Errorf("read own pending entries of %s: %w", s.cfg.Key, err)
		}
		if len(res) == 0 || len(res[0].Messages) == 0 {
			return nil
		}
		msgs := res[0].Messages
		if err := s.emit(ctx, out, msgs, nil); err != nil {
			return err
		}
		start = msgs[len(msgs)-1].ID
	}
}

func (s *Stream) readNew(ctx context.Context, out chan<- orders.Ref) error {
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: s.cfg.Group, Consumer: s.cfg.Consumer, Streams: []string{s.cfg.Key, ">"},
		Count: s.count, Block: s.Block,
	}).Result()
	if err == redis.Nil || (err != nil && ctx.Err() != nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", s.cfg.Key, err)
	}
	for _, st := range res {
		if err := s.emit(ctx, out, st.Messages, nil); err != nil {
			return err
		}
	}
	return nil
}

// chores renews this consumer's leases, claims entries dead consumers left
// pending, and updates the pending and lag gauges.
func (s *Stream) chores(ctx context.Context, out chan<- orders.Ref) error {
	if err := s.renew(ctx, out); err != nil {
		return err
	}
	if err := s.claim(ctx, out); err != nil {
		return err
	}
	groups, err := s.rdb.XInfoGroups(ctx, s.cfg.Key).Result()
	if err != nil {
		return fmt.Errorf("read the state of group %s: %w", s.cfg.Group, err)
	}
	for _, g := range groups {
		if g.Name == s.cfg.Group {
			s.metrics.StreamPending.Set(float64(g.Pending))
			s.metrics.StreamLag.Set(float64(g.Lag))
		}
	}
	return nil
}

// renew resets the idle time of every entry this consumer holds and handed
// on (XCLAIM JUSTID leaves the delivery count alone), so that a batch waiting
// in a slow pipeline is not claimed by another host: only a consumer that
// stopped renewing, a dead one, loses its entries. An entry pending with this
// consumer that it never handed on (the reply that delivered it was lost) is
// claimed again in full and handed on now. Entries no longer pending were
// acknowledged and are forgotten.
func (s *Stream) renew(ctx context.Context, out chan<- orders.Ref) error {
	pending := map[string]struct{}{}
	var known, lost []string
	start := "-"
	for {
		page, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: s.cfg.Key, Group: s.cfg.Group, Consumer: s.cfg.Consumer, Start: start, End: "+", Count: 1000,
		}).Result()
		if err != nil {
			return fmt.Errorf("list own pending entries of %s: %w", s.cfg.Key, err)
		}
		for _, p := range page {
			pending[p.ID] = struct{}{}
			if _, ok := s.handedOn[p.ID]; ok {
				known = append(known, p.ID)
			} else {
				lost = append(lost, p.ID)
			}
		}
		if len(page) < 1000 {
			break
		}
		start = "(" + page[len(page)-1].ID
	}
	for id := range s.handedOn {
		if _, ok := pending[id]; !ok {
			delete(s.handedOn, id)
		}
	}
	for len(known) > 0 {
		chunk := known[:min(len(known), 1000)]
		known = known[len(chunk):]
		err := s.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
			Stream: s.cfg.Key, Group: s.cfg.Group, Consumer: s.cfg.Consumer, MinIdle: 0, Messages: chunk,
		}).Err()
		if err != nil {
			return fmt.Errorf("renew own pending entries of %s: %w", s.cfg.Key, err)
		}
	}
	for len(lost) > 0 {
		chunk := lost[:min(len(lost), 1000)]
		lost = lost[len(chunk):]
		msgs, err := s.rdb.XClaim(ctx, &redis.XClaimArgs{
			Stream: s.cfg.Key, Group: s.cfg.Group, Consumer: s.cfg.Consumer, MinIdle: 0, Messages: chunk,
		}).Result()
		if err != nil {
			return fmt.Errorf("take back own pending entries of %s: %w", s.cfg.Key, err)
		}
		if len(msgs) == 0 {
			continue
		}
		s.logger.Warn("taking back pending entries whose delivery never arrived", "stream", s.cfg.Key, "entries", len(msgs), "first", msgs[0].ID)
		deliveries, err := s.deliveries(ctx, msgs)
		if err != nil {
			return err
		}
		if err := s.emit(ctx, out, msgs, deliveries); err != nil {
			return err
		}
	}
	return nil
}

// claim takes over entries idle for claim_idle (XAUTOCLAIM). An entry
// delivered more than max_deliveries times is handed on as poison: the
// pipeline dead-letters and acknowledges it.
func (s *Stream) claim(ctx context.Context, out chan<- orders.Ref) error {
	start := "0-0"
	for {
		msgs, next, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: s.cfg.Key, Group: s.cfg.Group, Consumer: s.cfg.Consumer,
			MinIdle: s.cfg.ClaimIdle, Start: start, Count: s.count,
		}).Result()
		if err != nil {
			return fmt.Errorf("claim idle entries of %s: %w", s.cfg.Key, err)
		}
		if len(msgs) > 0 {
			deliveries, err := s.deliveries(ctx, msgs)
			if err != nil {
				return err
			}
			s.metrics.StreamClaimed.Add(float64(len(msgs)))
			s.logger.Warn("claimed entries another consumer left pending", "stream", s.cfg.Key, "entries", len(msgs), "first", msgs[0].ID)
			if err := s.emit(ctx, out, msgs, deliveries); err != nil {
				return err
			}
		}
		if next == "0-0" || next == "" {
			return nil
		}
		start = next
	}
}

// deliveries returns how often each of msgs (just claimed by this consumer)
// has been delivered.
func (s *Stream) deliveries(ctx context.Context, msgs []redis.XMessage) (map[string]int64, error) {
	pending, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: s.cfg.Key, Group: s.cfg.Group, Consumer: s.cfg.Consumer,
		Start: msgs[0].ID, End: msgs[len(msgs)-1].ID, Count: int64(len(msgs)) + 1000,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("read delivery counts of %s: %w", s.cfg.Key, err)
	}
	out := make(map[string]int64, len(pending))
	for _, p := range pending {
		out[p.ID] = p.RetryCount
	}
	return out, nil
}

func (s *Stream) emit(ctx context.Context, out chan<- orders.Ref, msgs []redis.XMessage, deliveries map[string]int64) error {
	now := time.Now()
	for _, m := range msgs {
		ref := orders.Ref{Channel: s.cfg.Key, Stream: s.cfg.Key, StreamID: m.ID, Received: now}
		ref.ID, _ = m.Values[StreamIDField].(string)
		if ref.ID == "" {
			ref.Poison = fmt.Sprintf("stream entry %s has no %q field holding an order id", m.ID, StreamIDField)
		}
		if n := deliveries[m.ID]; n > int64(s.cfg.MaxDeliveries) {
			ref.Poison = fmt.Sprintf("stream entry %s was delivered %d times without being finished (max_deliveries %d)", m.ID, n, s.cfg.MaxDeliveries)
			ref.Attempt = int(n)
		}
		select {
		case out <- ref:
			s.handedOn[m.ID] = struct{}{}
		case <-ctx.Done():
			return errors.New("stopped with entries not handed on; they stay pending")
		}
	}
	return nil
}
