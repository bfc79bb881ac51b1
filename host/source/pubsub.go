// Package source delivers order ids from Redis to the pipeline.
package source

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
)

// PubSub subscribes to Redis Pub/Sub channels. Pub/Sub is at-most-once:
// what is published while the connection is down never arrives here (the
// order hashes stay in Redis, though).
type PubSub struct {
	rdb      redis.UniversalClient
	channels []string
	logger   hclog.Logger
	metrics  *metrics.Metrics
	// OnSubscribed, when set, is called each time every channel is
	// (re)subscribed; reconnect is false the first time.
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
func (s *PubSub) Run(ctx context.Context, out chan<- orders.Ref) error {
	ps := s.rdb.Subscribe(ctx, s.channels...)
	defer ps.Close()
	// go-redis does not interrupt a blocked read when ctx ends; closing the
	// subscription does, so shutdown is immediate rather than after healthEvery.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
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
			return nil
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
			}
			s.metrics.RedisErrors.WithLabelValues("subscribe").Inc()
			clear(subscribed)
			select {
			case <-time.After(b.NextBackOff()):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			subscribed[m.Channel] = true
			if len(subscribed) < len(s.channels) {
				continue
			}
			b.Reset()
			down = false
			if everSubscribed {
				s.metrics.Reconnects.Inc()
				s.logger.Info("resubscribed after reconnect", "channels", s.channels)
			} else {
				s.logger.Info("subscribed", "channels", s.channels)
			}
			if s.OnSubscribed != nil {
				s.OnSubscribed(everSubscribed)
			}
			everSubscribed = true
		case *redis.Message:
			ref := orders.Ref{ID: m.Payload, Channel: s.channelName(m.Channel), Received: time.Now()}
			select {
			case out <- ref:
			default:
				s.drop(ctx, out, ref)
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// channelName returns the configured string equal to channel, so that the
// ids waiting in the intake share it instead of each keeping the copy
// go-redis read; channel itself if none is.
func (s *PubSub) channelName(channel string) string {
	for _, c := range s.channels {
		if c == channel {
			return c
		}
	}
	return channel
}

// drop counts an id that found the intake full (the pipeline is paused, or
// cannot keep up). Holding it would hold ids without bound; Redis' output
// buffer for this connection would overflow next. The order hash is in
// Redis, so once the intake has drained to half, OnDrained asks for a
// catch-up, which starts after the last drop and so finds every dropped
// order.
func (s *PubSub) drop(ctx context.Context, out chan<- orders.Ref, ref orders.Ref) {
	s.metrics.OrdersDropped.WithLabelValues(ref.Channel).Inc()
	if s.draining.Swap(true) {
		return
	}
	s.logger.Warn("intake buffer full: dropping order ids until it drains; a catch-up then finds them", "buffer", cap(out))
	go func() {
		tick := time.NewTicker(s.DrainPoll)
		defer tick.Stop()
		for len(out) > cap(out)/2 {
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
