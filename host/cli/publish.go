package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
	"github.com/eventhost/eventhost/host/redisconn"
)

func publishCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("publish", stderr)
	path := configFlag(fs)
	n := fs.Int("n", 0, "publish this many synthetic orders (0: one order from the -id… flags)")
	seed := fs.Int64("seed", 1, "seed of the synthetic orders; the same seed gives the same orders")
	rate := fs.Float64("rate", 0, "orders per second (0: as fast as possible)")
	wait := fs.Duration("wait", 0, "after publishing, wait up to this long until every configured plugin applied the last order")
	toStream := fs.Bool("stream", false, "append ids to the Redis Stream (XADD, to the shard each id hashes to when the stream source has shards) instead of publishing them; the default when the config's source is \"stream\"")
	one := publish.Order{}
	fs.StringVar(&one.ID, "id", "", "order id (single order)")
	fs.Int64Var(&one.TS, "ts", 0, "unix time in seconds (single order; default now)")
	fs.Int64Var(&one.Qty, "qty", 1, "tickets (single order)")
	fs.StringVar(&one.Cost, "cost", "0.00", "total cost (single order)")
	fs.StringVar(&one.Event, "event", "", "event name (single order)")
	fs.StringVar(&one.Who, "who", "", "customer (single order)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	rdb, err := redisconn.New(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	pub := publish.NewPublisher(rdb, cfg.Source.Channels[0], cfg.OrderKeyPrefix)
	pub.Sharded = cfg.Source.Sharded
	if *toStream || cfg.Source.Stream != nil {
		// Channels[0] is the stream's name for a stream source, and the
		// default stream name (the channel's) otherwise.
		pub = publish.NewStreamPublisher(rdb, cfg.Source.Channels[0], cfg.OrderKeyPrefix)
		if cfg.Source.Stream != nil {
			pub.Shards = cfg.Source.Stream.Shards
		}
	}

	var last string
	start := time.Now()
	if *n > 0 {
		progress := func(done int) {
			if done%10000 == 0 {
				fmt.Fprintf(stderr, "published %d/%d\n", done, *n)
			}
		}
		published, err := pub.PublishMany(ctx, publish.NewGenerator(*seed), *n, *rate, progress)
		if err != nil {
			return err
		}
		last = published[len(published)-1].ID
		el := time.Since(start)
		fmt.Fprintf(stdout, "published %d orders on %s in %s (%.0f orders/s)\n", len(published), cfg.Source.Channels[0], el.Round(time.Millisecond), float64(len(published))/el.Seconds())
	} else {
		if one.ID == "" || one.Event == "" || one.Who == "" {
			return usageError{fmt.Errorf("give -n N for synthetic orders, or -id, -event and -who (with -qty, -cost, -ts) for one order")}
		}
		if one.TS == 0 {
			one.TS = time.Now().Unix()
		}
		if err := pub.Publish(ctx, one); err != nil {
			return err
		}
		last = one.ID
		fmt.Fprintf(stdout, "published order %s on %s\n", one.ID, cfg.Source.Channels[0])
	}
	if *wait > 0 {
		if err := waitApplied(ctx, rdb, cfg, last, *wait); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "all %d plugins applied order %s after %s\n", len(cfg.Plugins), last, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// waitApplied polls the done markers of order id until every configured
// plugin has applied it. Orders on one channel are applied in the order they
// were published, so the last one stands for all.
func waitApplied(ctx context.Context, rdb redis.UniversalClient, cfg *config.Config, id string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		fields, err := rdb.HGetAll(ctx, cfg.OrderKeyPrefix+id).Result()
		if err == nil {
			missing := 0
			for _, p := range cfg.Plugins {
				if !keyspace.Done(fields, p.Name) {
					missing++
				}
			}
			if missing == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("order %s not applied by every plugin within %s (is `eventhost run` running?)", id, limit)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
