// Package publish plays the ticket shop: it stores purchase orders in their
// Redis hashes and announces each order id on a Pub/Sub channel, exactly as
// the tutorial's post_purchases does. It exists to feed eventhost with load
// and with orders whose expected effects a test can compute.
package publish

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/redisconn"
)

// Defaults the shop uses.
const (
	DefaultChannel   = "purchase_orders"
	DefaultKeyPrefix = "purchase_order_details:"
)

// chunkSize bounds how many orders go in one pipeline round trip.
const chunkSize = 256

// Publisher writes orders and announces them. Set its fields before the
// first Publish.
type Publisher struct {
	rdb     redis.UniversalClient
	channel string
	prefix  string
	// stream announces ids by XADD to the stream named channel instead of
	// PUBLISH.
	stream bool

	// Sharded announces with SPUBLISH (sharded Pub/Sub) instead of PUBLISH.
	Sharded bool
	// Shards, for a stream, spreads the entries over the stream's shard
	// keys (config.Stream.Keys): each order id always to the same one.
	Shards int
}

// StreamIDField is the field of a stream entry that holds the order id.
const StreamIDField = config.StreamIDField

// NewPublisher returns a Publisher that stores order id in the hash
// keyPrefix+id and publishes id on channel. It does no I/O.
func NewPublisher(rdb redis.UniversalClient, channel, keyPrefix string) *Publisher {
	return &Publisher{rdb: rdb, channel: channel, prefix: keyPrefix}
}

// NewStreamPublisher returns a Publisher that stores order id in the hash
// keyPrefix+id and appends an entry {id: id} to the stream at key. It does
// no I/O.
func NewStreamPublisher(rdb redis.UniversalClient, key, keyPrefix string) *Publisher {
	return &Publisher{rdb: rdb, channel: key, prefix: keyPrefix, stream: true}
}

// Key is the hash key of order id.
func (p *Publisher) Key(id string) string { return p.prefix + id }

// Publish stores o and then publishes its id, in one round trip (two on a
// cluster). The hash is written before the id is announced, so a subscriber
// never sees an id whose hash is missing.
func (p *Publisher) Publish(ctx context.Context, o Order) error {
	if err := p.publishBatch(ctx, []Order{o}); err != nil {
		return fmt.Errorf("publish order %s: %w", o.ID, err)
	}
	return nil
}

// PublishMany publishes n orders drawn from gen. With rate <= 0 it goes as
// fast as it can, up to 256 orders per round trip; with rate > 0 it sends
// about rate orders per second, keeping to a schedule fixed at the start so
// that a slow round trip is caught up on rather than accumulated as drift.
// progress, if not nil, is called after every round trip with the number of
// orders published so far.
//
// It returns the orders that were published. On error (including ctx being
// done) those are the orders of the round trips that succeeded; orders of the
// failed round trip may or may not be in Redis.
func (p *Publisher) PublishMany(ctx context.Context, gen *Generator, n int, rate float64, progress func(done int)) ([]Order, error) {
	out := make([]Order, 0, n)
	start := time.Now()
	for len(out) < n {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("publish orders: %w", err)
		}
		batch := min(chunkSize, n-len(out))
		if rate > 0 {
			// Order i (from 0) is due at start + i/rate.
			due := min(int(time.Since(start).Seconds()*rate)+1, n)
			if due <= len(out) {
				next := start.Add(time.Duration(float64(len(out)) / rate * float64(time.Second)))
				if err := sleepUntil(ctx, next); err != nil {
					return out, fmt.Errorf("publish orders: %w", err)
				}
				continue
			}
			batch = min(batch, due-len(out))
		}
		orders := make([]Order, batch)
		for i := range orders {
			orders[i] = gen.Next()
		}
		if err := p.publishBatch(ctx, orders); err != nil {
			return out, fmt.Errorf("publish orders %s..%s: %w", orders[0].ID, orders[len(orders)-1].ID, err)
		}
		out = append(out, orders...)
		if progress != nil {
			progress(len(out))
		}
	}
	return out, nil
}

// publishBatch sends HSET, then PUBLISH (or SPUBLISH, or XADD) for every
// order, in order, in one pipeline. It is not a transaction: like
// post_purchases, a failure midway can leave a stored order that was never
// announced.
//
// On a cluster the client splits a pipeline per node and sends the parts at
// once, so an order's HSET (on its hash's node) could land after its
// announcement (on another node): there the HSETs go first, and the
// announcements only once every HSET is acknowledged.
func (p *Publisher) publishBatch(ctx context.Context, orders []Order) error {
	pipe := p.rdb.Pipeline()
	for _, o := range orders {
		pipe.HSet(ctx, p.Key(o.ID), o.Fields()...)
		if !redisconn.Cluster(p.rdb) {
			p.announce(ctx, pipe, o.ID)
		}
	}
	if redisconn.Cluster(p.rdb) {
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("store %d orders: %w", len(orders), err)
		}
		for _, o := range orders {
			p.announce(ctx, pipe, o.ID)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("pipeline of %d orders: %w", len(orders), err)
	}
	return nil
}

// announce queues the announcement of id on pipe.
func (p *Publisher) announce(ctx context.Context, pipe redis.Pipeliner, id string) {
	switch {
	case p.stream:
		key := config.Stream{Key: p.channel, Shards: p.Shards}.KeyFor(id)
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{StreamIDField, id}})
	case p.Sharded:
		pipe.SPublish(ctx, p.channel, id)
	default:
		pipe.Publish(ctx, p.channel, id)
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
