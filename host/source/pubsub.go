// Package source delivers order ids from Redis to the pipeline.
package source

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/intake"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/redisconn"
)

// PubSub subscribes to Redis Pub/Sub channels. Pub/Sub is at-most-once:
// what is published while the connection is down never arrives here (the
// order hashes stay in Redis, though).
type PubSub struct {
	rdb      redis.UniversalClient
	channels []string
	logger   hclog.Logger
	metrics  *metrics.Metrics
	// Sharded subscribes with SSUBSCRIBE, each channel on a connection of
	// its own: on a cluster a sharded channel lives on the master that owns
	// its slot, and one SSUBSCRIBE may only name channels of one slot.
	Sharded bool
	// OnSubscribed, when set, is called once every channel is subscribed
	// (reconnect false), then each time a channel is subscribed again after
	// its connection was lost or, sharded, its slot moved (reconnect true).
	// It may be called from several goroutines.
	OnSubscribed func(reconnect bool)
	// OnDrained, when set, is called once the intake has room again after
	// the source dropped ids because it was full (a catch-up then finds
	// them). It is called from another goroutine.
	OnDrained func()
	// DrainPoll is how often a full intake is looked at until it drains.
	DrainPoll time.Duration

	draining atomic.Bool
}

// NewPubSub returns a source for channels.
func NewPubSub(rdb redis.UniversalClient, channels []string, logger hclog.Logger, m *metrics.Metrics) *PubSub {
	return &PubSub{rdb: rdb, channels: channels, logger: logger, metrics: m, DrainPoll: 20 * time.Millisecond}
}

// healthEvery is how long a silent connection may stay silent before it is
// pinged: a dead TCP peer otherwise blocks the read forever.
const healthEvery = 5 * time.Second

// Run sends every id published on the channels to out until ctx ends. It
// reconnects and resubscribes by itself, forever.
func (s *PubSub) Run(ctx context.Context, out *intake.Queue) error {
	if !s.Sharded {
		s.receive(ctx, out, s.channels, s.OnSubscribed)
		return nil
	}
	// One subscription per channel; the first OnSubscribed waits for all.
	var mu sync.Mutex
	first := 0
	subscribed := func(reconnect bool) {
		mu.Lock()
		if !reconnect {
			first++
		}
		all := first == len(s.channels)
		mu.Unlock()
		switch {
		case s.OnSubscribed == nil:
		case !reconnect && all:
			s.OnSubscribed(false)
		case reconnect && all:
			s.OnSubscribed(true)
		}
		// A channel lost before all were subscribed once needs no call of
		// its own: the first call's catch-up comes after it.
	}
	var wg sync.WaitGroup
	for _, ch := range s.channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.receive(ctx, out, []string{ch}, subscribed)
		}()
	}
	wg.Wait()
	return nil
}

// subscribe starts a subscription to channels: sharded (SSUBSCRIBE) or not.
// It does not wait for Redis' confirmation, which receive reads.
func (s *PubSub) subscribe(ctx context.Context, channels []string) (*redis.PubSub, string) {
	if s.Sharded {
		return s.rdb.SSubscribe(ctx, channels...), "ssubscribe"
	}
	return s.rdb.Subscribe(ctx, channels...), "subscribe"
}

// receive reads one subscription to channels until ctx ends, subscribing
// again (with backoff) after its connection was lost or Redis dropped it.
func (s *PubSub) receive(ctx context.Context, out *intake.Queue, channels []string, onSubscribed func(reconnect bool)) {
	ps, kind := s.subscribe(ctx, channels)
	// Closed through the variable: a moved slot replaces the subscription.
	defer func() { _ = ps.Close() }()
	// go-redis does not interrupt a blocked read when ctx ends; closing the
	// subscription does, so shutdown is immediate rather than after healthEvery.
	var mu sync.Mutex
	stop := context.AfterFunc(ctx, func() { mu.Lock(); _ = ps.Close(); mu.Unlock() })
	defer stop()
	// renew replaces the subscription by a new one. On a cluster the client
	// first learns where slots are now: a subscription goes to the node its
	// channel's slot was on when the client last looked.
	renew := func() {
		mu.Lock()
		defer mu.Unlock()
		_ = ps.Close()
		if cc, ok := s.rdb.(*redis.ClusterClient); ok {
			cc.ReloadState(ctx)
		}
		if ctx.Err() == nil {
			ps, _ = s.subscribe(ctx, channels)
		}
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxInterval = 2 * time.Second
	b.MaxElapsedTime = 0
	b.Reset() // the constructor already fixed the first interval at its default
	subscribed := map[string]bool{}
	everSubscribed, down := false, false
	for {
		msg, err := ps.ReceiveTimeout(ctx, healthEvery)
		if err != nil && ctx.Err() != nil {
			return
		}
		if err != nil {
			var nerr net.Error
			if errors.As(err, &nerr) && nerr.Timeout() {
				if perr := ps.Ping(ctx); perr == nil {
					continue
				}
			}
			if !down {
				s.logger.Error("pubsub connection lost; reconnecting", "error", err)
				down = true
			} else {
				s.logger.Debug("pubsub still down", "channels", channels, "error", err)
			}
			s.metrics.RedisErrors.WithLabelValues("subscribe").Inc()
			clear(subscribed)
			select {
			case <-time.After(b.NextBackOff()):
			case <-ctx.Done():
				return
			}
			var reply redis.Error
			if errors.As(err, &reply) || redisconn.Cluster(s.rdb) {
				// Redis refused the subscription (a MOVED after a slot
				// moved), or a cluster node went away (its replica may
				// own the slot now): go-redis would reconnect to the
				// node it knew, so subscribe anew where the slot is now.
				renew()
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "sunsubscribe" {
				// We never unsubscribe: Redis dropped the channel because
				// its slot moved to another master. A new subscription
				// finds the slot's owner; the catch-up after it finds
				// what was published meanwhile.
				s.logger.Warn("sharded channel's slot moved; subscribing again", "channel", m.Channel)
				s.metrics.RedisErrors.WithLabelValues("subscribe").Inc()
				clear(subscribed)
				down = true
				renew()
				continue
			}
			if m.Kind != kind {
				continue
			}
			subscribed[m.Channel] = true
			if len(subscribed) < len(channels) {
				continue
			}
			b.Reset()
			down = false
			if everSubscribed {
				s.metrics.Reconnects.Inc()
				s.logger.Info("resubscribed after reconnect", "channels", channels)
			} else {
				s.logger.Info("subscribed", "channels", channels)
			}
			if onSubscribed != nil {
				onSubscribed(everSubscribed)
			}
			everSubscribed = true
		case *redis.Message:
			// The queue keeps a copy of the id and its own copy of the
			// channel's name, not go-redis' strings.
			ref := orders.Ref{ID: m.Payload, Channel: m.Channel, Received: time.Now()}
			if !out.Offer(ref) {
				s.drop(ctx, out, ref)
			}
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// drop counts an id that found the intake full (the pipeline is paused, or
// cannot keep up). Holding it would hold ids without bound; Redis' output
// buffer for this connection would overflow next. The order hash is in
// Redis, so once the intake has drained to half, OnDrained asks for a
// catch-up, which starts after the last drop and so finds every dropped
// order.
func (s *PubSub) drop(ctx context.Context, out *intake.Queue, ref orders.Ref) {
	s.metrics.OrdersDropped.WithLabelValues(ref.Channel).Inc()
	if s.draining.Swap(true) {
		return
	}
	s.logger.Warn("intake buffer full: dropping order ids until it drains; a catch-up then finds them", "buffer", out.Cap())
	go func() {
		tick := time.NewTicker(s.DrainPoll)
		defer tick.Stop()
		for out.Len() > out.Cap()/2 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
		// Cleared first: a drop from now on starts another watch, and its
		// catch-up is asked for after this one.
		s.draining.Store(false)
		s.logger.Info("intake drained after dropping order ids; catching up")
		if s.OnDrained != nil {
			s.OnDrained()
		}
	}()
}
