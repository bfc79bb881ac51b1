package publish_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/publish"
)

// BenchmarkPublishCluster measures what storing before announcing costs on
// a 3-master cluster: the Publisher (HSETs, wait, XADDs: two round trips per
// 256 orders) next to one pipeline of both (one round trip, but an id may
// arrive before its hash), to a 3-shard stream. Compare the two ns/op
// figures (ns/op is per order) of one run.
//
//	go test ./host/publish -run '^$' -bench PublishCluster -benchtime 20000x
func BenchmarkPublishCluster(b *testing.B) {
	rdb := redistest.StartCluster(b, 3).Client()
	stream := config.Stream{Key: "po", Shards: 3}
	b.Run("stored-then-announced", func(b *testing.B) {
		p := publish.NewStreamPublisher(rdb, stream.Key, prefix)
		p.Shards = stream.Shards
		b.ResetTimer()
		if _, err := p.PublishMany(b.Context(), publish.NewGenerator(1), b.N, 0, nil); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("one-pipeline", func(b *testing.B) {
		gen := publish.NewGenerator(2)
		b.ResetTimer()
		for done := 0; done < b.N; {
			pipe := rdb.Pipeline()
			n := min(256, b.N-done)
			for range n {
				o := gen.Next()
				pipe.HSet(b.Context(), prefix+o.ID, o.Fields()...)
				pipe.XAdd(b.Context(), &redis.XAddArgs{Stream: stream.KeyFor(o.ID), Values: []any{publish.StreamIDField, o.ID}})
			}
			if _, err := pipe.Exec(b.Context()); err != nil {
				b.Fatal(err)
			}
			done += n
		}
	})
}
