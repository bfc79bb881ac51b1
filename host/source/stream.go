package source

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/intake"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/redisconn"
)

// StreamIDField is the entry field that holds the order id; eventhost
// publish -stream writes it.
const StreamIDField = config.StreamIDField

// Stream reads order ids from a Redis Stream as one consumer of a group.
// An entry stays pending until the pipeline acknowledges it in the same
// atomic step that applies its effects; entries left pending by a consumer
// that stopped renewing them (a dead host) are claimed after claim_idle.
//
// A sharded stream is several stream keys, each with its own group of the
// same name: the source reads them all, claims and renews on each, and
// names each entry's key in the Ref, for the ack.
type Stream struct {
	rdb     redis.UniversalClient
	cfg     config.Stream
	logger  hclog.Logger
	metrics *metrics.Metrics
	// Count is how many entries one read takes at most (default 512, a
	// batch: batch.max_orders). Set it, like the other fields, before Run.
	Count int
	// OnReady, when set, is called once the group exists on every key and
	// the entries this consumer had pending are handed on.
	OnReady func()
	// Block is how long one read waits for new entries; shutdown waits at
	// most this long for the read in flight.
	Block time.Duration

	keys []*streamKey
}

// streamKey is the source's state for one stream key. Only the reader of
// the key touches it, but for the gauges.
type streamKey struct {
	key string
	// handedOn holds the entries this consumer handed to the pipeline and
	// has not seen acknowledged yet. An entry pending with this consumer
	// but not in it was delivered in a reply that never arrived (Redis
	// died after sending it): renewing it would hide it forever.
	handedOn map[string]struct{}
	ready    bool
	// pending and lag are the group's, for the gauges (summed over keys).
	pending, lag atomic.Int64
}

// NewStream returns a stream source for cfg.
func NewStream(rdb redis.UniversalClient, cfg config.Stream, logger hclog.Logger, m *metrics.Metrics) *Stream {
	// A read blocks at most a third of claim_idle, so that renewing this
	// consumer's leases is never late.
	block := min(500*time.Millisecond, max(cfg.ClaimIdle/3, 10*time.Millisecond))
	s := &Stream{rdb: rdb, cfg: cfg, Count: 512, logger: logger, metrics: m, Block: block}
	for _, k := range cfg.Keys() {
		s.keys = append(s.keys, &streamKey{key: k, handedOn: map[string]struct{}{}})
	}
	return s
}

// count is Count, at least 1.
func (s *Stream) count() int { return max(s.Count, 1) }

// Run hands entries to out until ctx ends. Redis failures are retried with
// backoff, forever.
func (s *Stream) Run(ctx context.Context, out *intake.Queue) error {
	var waiting atomic.Int32
	ready := func() {
		if waiting.Add(-1) == 0 && s.OnReady != nil {
			s.OnReady()
		}
	}
	if !redisconn.Cluster(s.rdb) {
		// One node holds every key: one read waits on them all.
		waiting.Store(1)
		s.read(ctx, out, s.keys, ready)
		return nil
	}
	// On a cluster one command may only name keys of one slot, and every
	// shard has its own: a reader per key, each on the key's master.
	waiting.Store(int32(len(s.keys)))
	var wg sync.WaitGroup
	for _, k := range s.keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.read(ctx, out, []*streamKey{k}, ready)
		}()
	}
	wg.Wait()
	return nil
}

// read is one reader of keys: it creates their groups, hands on what this
// consumer had pending, then reads new entries and does the chores, calling
// ready once all keys are ready, until ctx ends.
func (s *Stream) read(ctx context.Context, out *intake.Queue, keys []*streamKey, ready func()) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxInterval = 2 * time.Second
	b.MaxElapsedTime = 0
	b.Reset() // the constructor already fixed the first interval at its default
	allReady, regroup := false, false
	// Keep the pipeline's backlog short: unread entries wait in the stream,
	// where any host of the group can take them.
	highWater := max(4*s.count(), 64)
	var nextChores time.Time
	for ctx.Err() == nil {
		err := func() error {
			if regroup {
				if err := s.regroup(ctx, keys); err != nil {
					return err
				}
				regroup = false
			}
			for _, k := range keys {
				if k.ready {
					continue
				}
				if _, err := s.ensureGroup(ctx, k, s.cfg.Start); err != nil {
					return err
				}
				if err := s.readOwnPending(ctx, out, k); err != nil {
					return err
				}
				k.ready = true
				s.logger.Info("reading stream", "stream", k.key, "group", s.cfg.Group, "consumer", s.cfg.Consumer)
			}
			if !allReady {
				allReady = true
				ready()
			}
			if now := time.Now(); now.After(nextChores) {
				for _, k := range keys {
					if err := s.chores(ctx, out, k); err != nil {
						return err
					}
				}
				nextChores = now.Add(s.choreEvery())
			}
			if out.Len() > highWater {
				select {
				case <-time.After(10 * time.Millisecond):
				case <-ctx.Done():
				}
				return nil
			}
			return s.readNew(ctx, out, keys)
		}()
		if err == nil {
			b.Reset()
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if redis.HasErrorPrefix(err, "NOGROUP") {
			// A stream or its group was deleted. Whatever the new stream
			// holds is read from its start: done markers make a second
			// look at an entry harmless, a skipped one would be lost.
			s.logger.Warn("consumer group is gone; creating it again from the stream's start", "streams", streamNames(keys), "group", s.cfg.Group)
			regroup = true
		}
		s.metrics.RedisErrors.WithLabelValues("stream").Inc()
		wait := b.NextBackOff()
		s.logger.Error("reading the stream failed; retrying", "streams", streamNames(keys), "error", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

func streamNames(keys []*streamKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.key
	}
	return out
}

// regroup creates the group again, from the stream's start, on each of
// keys that lost it. What this consumer handed on from a lost group will
// never be acknowledged there.
func (s *Stream) regroup(ctx context.Context, keys []*streamKey) error {
	for _, k := range keys {
		created, err := s.ensureGroup(ctx, k, "0")
		if err != nil {
			return err
		}
		if created {
			clear(k.handedOn)
		}
	}
	return nil
}

// choreEvery is how often leases are renewed and dead consumers' entries
// claimed: well inside claim_idle, so a live host's entries never look idle.
func (s *Stream) choreEvery() time.Duration {
	return max(s.cfg.ClaimIdle/3, 50*time.Millisecond)
}

// ensureGroup creates the group on k, starting at start, unless it exists;
// it reports whether it created it.
func (s *Stream) ensureGroup(ctx context.Context, k *streamKey, start string) (bool, error) {
	err := s.rdb.XGroupCreateMkStream(ctx, k.key, s.cfg.Group, start).Err()
	if redis.HasErrorPrefix(err, "BUSYGROUP") {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create consumer group %s on %s: %w", s.cfg.Group, k.key, err)
	}
	return true, nil
}

// readOwnPending hands on what this consumer read before and did not
// acknowledge (a host restarted under a fixed consumer name).
func (s *Stream) readOwnPending(ctx context.Context, out *intake.Queue, k *streamKey) error {
	start := "0"
	for {
		res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: s.cfg.Group, Consumer: s.cfg.Consumer, Streams: []string{k.key, start}, Count: int64(s.count()),
		}).Result()
		if err != nil && err != redis.Nil {
			return fmt.Errorf("read own pending entries of %s: %w", k.key, err)
		}
		if len(res) == 0 || len(res[0].Messages) == 0 {
			return nil
		}
		msgs := res[0].Messages
		if err := s.emit(ctx, out, k, msgs, nil); err != nil {
			return err
		}
		start = msgs[len(msgs)-1].ID
	}
}

// readNew reads entries never delivered from keys, waiting up to Block.
func (s *Stream) readNew(ctx context.Context, out *intake.Queue, keys []*streamKey) error {
	streams := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		streams = append(streams, k.key)
	}
	for range keys {
		streams = append(streams, ">")
	}
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: s.cfg.Group, Consumer: s.cfg.Consumer, Streams: streams,
		Count: int64(s.count()), Block: s.Block,
	}).Result()
	if err == redis.Nil || (err != nil && ctx.Err() != nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", strings.Join(streams[:len(keys)], ", "), err)
	}
	for _, st := range res {
		for _, k := range keys {
			if k.key == st.Stream {
				if err := s.emit(ctx, out, k, st.Messages, nil); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// chores renews this consumer's leases, claims entries dead consumers left
// pending, and updates the pending and lag gauges.
func (s *Stream) chores(ctx context.Context, out *intake.Queue, k *streamKey) error {
	if err := s.renew(ctx, out, k); err != nil {
		return err
	}
	if err := s.claim(ctx, out, k); err != nil {
		return err
	}
	groups, err := s.rdb.XInfoGroups(ctx, k.key).Result()
	if err != nil {
		return fmt.Errorf("read the state of group %s on %s: %w", s.cfg.Group, k.key, err)
	}
	for _, g := range groups {
		if g.Name == s.cfg.Group {
			k.pending.Store(g.Pending)
			k.lag.Store(g.Lag)
		}
	}
	var pending, lag int64
	for _, k := range s.keys {
		pending += k.pending.Load()
		lag += k.lag.Load()
	}
	s.metrics.StreamPending.Set(float64(pending))
	s.metrics.StreamLag.Set(float64(lag))
	return nil
}

// renew resets the idle time of every entry this consumer holds and handed
// on (XCLAIM JUSTID leaves the delivery count alone), so that a batch waiting
// in a slow pipeline is not claimed by another host: only a consumer that
// stopped renewing, a dead one, loses its entries. An entry pending with this
// consumer that it never handed on (the reply that delivered it was lost) is
// claimed again in full and handed on now. Entries no longer pending were
// acknowledged and are forgotten.
func (s *Stream) renew(ctx context.Context, out *intake.Queue, k *streamKey) error {
	pending := map[string]struct{}{}
	var known, lost []string
	start := "-"
	for {
		page, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: k.key, Group: s.cfg.Group, Consumer: s.cfg.Consumer, Start: start, End: "+", Count: 1000,
		}).Result()
		if err != nil {
			return fmt.Errorf("list own pending entries of %s: %w", k.key, err)
		}
		for _, p := range page {
			pending[p.ID] = struct{}{}
			if _, ok := k.handedOn[p.ID]; ok {
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
	for id := range k.handedOn {
		if _, ok := pending[id]; !ok {
			delete(k.handedOn, id)
		}
	}
	for len(known) > 0 {
		chunk := known[:min(len(known), 1000)]
		known = known[len(chunk):]
		err := s.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
			Stream: k.key, Group: s.cfg.Group, Consumer: s.cfg.Consumer, MinIdle: 0, Messages: chunk,
		}).Err()
		if err != nil {
			return fmt.Errorf("renew own pending entries of %s: %w", k.key, err)
		}
	}
	for len(lost) > 0 {
		chunk := lost[:min(len(lost), 1000)]
		lost = lost[len(chunk):]
		msgs, err := s.rdb.XClaim(ctx, &redis.XClaimArgs{
			Stream: k.key, Group: s.cfg.Group, Consumer: s.cfg.Consumer, MinIdle: 0, Messages: chunk,
		}).Result()
		if err != nil {
			return fmt.Errorf("take back own pending entries of %s: %w", k.key, err)
		}
		if len(msgs) == 0 {
			continue
		}
		s.logger.Warn("taking back pending entries whose delivery never arrived", "stream", k.key, "entries", len(msgs), "first", msgs[0].ID)
		deliveries, err := s.deliveries(ctx, k, msgs)
		if err != nil {
			return err
		}
		if err := s.emit(ctx, out, k, msgs, deliveries); err != nil {
			return err
		}
	}
	return nil
}

// claim takes over entries idle for claim_idle (XAUTOCLAIM). An entry
// delivered more than max_deliveries times is handed on as poison: the
// pipeline dead-letters and acknowledges it.
func (s *Stream) claim(ctx context.Context, out *intake.Queue, k *streamKey) error {
	start := "0-0"
	for {
		msgs, next, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: k.key, Group: s.cfg.Group, Consumer: s.cfg.Consumer,
			MinIdle: s.cfg.ClaimIdle, Start: start, Count: int64(s.count()),
		}).Result()
		if err != nil {
			return fmt.Errorf("claim idle entries of %s: %w", k.key, err)
		}
		if len(msgs) > 0 {
			deliveries, err := s.deliveries(ctx, k, msgs)
			if err != nil {
				return err
			}
			s.metrics.StreamClaimed.Add(float64(len(msgs)))
			s.logger.Warn("claimed entries another consumer left pending", "stream", k.key, "entries", len(msgs), "first", msgs[0].ID)
			if err := s.emit(ctx, out, k, msgs, deliveries); err != nil {
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
func (s *Stream) deliveries(ctx context.Context, k *streamKey, msgs []redis.XMessage) (map[string]int64, error) {
	pending, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: k.key, Group: s.cfg.Group, Consumer: s.cfg.Consumer,
		Start: msgs[0].ID, End: msgs[len(msgs)-1].ID, Count: int64(len(msgs)) + 1000,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("read delivery counts of %s: %w", k.key, err)
	}
	out := make(map[string]int64, len(pending))
	for _, p := range pending {
		out[p.ID] = p.RetryCount
	}
	return out, nil
}

func (s *Stream) emit(ctx context.Context, out *intake.Queue, k *streamKey, msgs []redis.XMessage, deliveries map[string]int64) error {
	now := time.Now()
	for _, m := range msgs {
		ref := orders.Ref{Channel: s.cfg.Key, Stream: k.key, StreamID: m.ID, Received: now}
		ref.ID, _ = m.Values[StreamIDField].(string)
		if ref.ID == "" {
			ref.Poison = fmt.Sprintf("stream entry %s has no %q field holding an order id", m.ID, StreamIDField)
		}
		if n := deliveries[m.ID]; n > int64(s.cfg.MaxDeliveries) {
			ref.Poison = fmt.Sprintf("stream entry %s was delivered %d times without being finished (max_deliveries %d)", m.ID, n, s.cfg.MaxDeliveries)
			ref.Attempt = int(n)
		}
		if out.Put(ctx, ref) != nil {
			return errors.New("stopped with entries not handed on; they stay pending")
		}
		k.handedOn[m.ID] = struct{}{}
	}
	return nil
}
