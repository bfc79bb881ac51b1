package e2e

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/publish"
)

// Orders as a producer stores and announces them, and malformed ones.

// storeAndPublish sends HSET and PUBLISH for each order in os, in order, in
// one pipeline, again and again until Redis acknowledges all of it. It
// returns, for each publish, how many subscribers received it.
//
// With stream set it appends {id: <id>} to the stream instead (as eventhost
// publish -stream does); every entry then counts as heard: the group keeps
// it until a host takes it.
func storeAndPublish(ctx context.Context, rdb *redis.Client, os []publish.Order, stream bool) ([]int64, error) {
	for {
		// A transaction, as a careful shop would: a plain pipeline sent
		// while Redis loads its AOF after a restart gets LOADING for HSET
		// but runs PUBLISH (allowed while loading), announcing ids whose
		// hash is not stored yet.
		pipe := rdb.TxPipeline()
		pubs := make([]*redis.IntCmd, len(os))
		for i, o := range os {
			pipe.HSet(ctx, orderPrefix+o.ID, o.Fields()...)
			if stream {
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: channel, Values: []any{publish.StreamIDField, o.ID}})
			} else {
				pubs[i] = pipe.Publish(ctx, channel, o.ID)
			}
		}
		_, err := pipe.Exec(ctx)
		if err == nil {
			heard := make([]int64, len(os))
			for i, c := range pubs {
				heard[i] = 1
				if c != nil {
					heard[i] = c.Val()
				}
			}
			return heard, nil
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return nil, fmt.Errorf("store orders %s..%s: %w (last error: %v)", os[0].ID, os[len(os)-1].ID, ctx.Err(), err)
		}
	}
}

// generated returns the n orders `eventhost publish -n n -seed seed` sends.
func generated(seed int64, n int) []publish.Order {
	gen := publish.NewGenerator(seed)
	out := make([]publish.Order, n)
	for i := range out {
		out[i] = gen.Next()
	}
	return out
}

// badOrder is an order id announced with a hash the host must refuse.
type badOrder struct {
	id string
	// fields is the hash as stored; nil stores no hash at all.
	fields map[string]string
	// reason is what the dead letter's reason must say besides the hash key.
	reason string
}
