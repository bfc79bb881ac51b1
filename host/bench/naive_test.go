package bench

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
)

// naive is the program a developer would write by hand from the tutorial:
// one process, no plugin boundary, no exactly-once. It subscribes, gathers
// ids into batches of up to 256, loads them with one pipelined HGETALL, and
// sends the tutorial's six commands per order in one pipeline. It is the
// bar issue #7 sets: eventhost, with three plugin processes and exactly-once,
// should be at least as fast.
type naive struct {
	rdb    *redis.Client
	cancel context.CancelFunc
	done   chan struct{}
	// applied counts orders whose writes Redis acknowledged.
	applied atomic.Int64
}

const naiveBatch = 256

func (r *naive) start(b *testing.B, addr string) {
	r.rdb = redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	sub := r.rdb.Subscribe(ctx, channel)
	if _, err := sub.Receive(ctx); err != nil {
		b.Fatal(err)
	}
	msgs := sub.Channel(redis.WithChannelSize(1 << 16))
	counter, bits := histogramConfig["counter"].(string), int64(32)
	overflow := strings.ToUpper(histogramConfig["overflow"].(string))
	go func() {
		defer close(r.done)
		defer sub.Close()
		ids := make([]string, 0, naiveBatch)
		for {
			ids = ids[:0]
			select {
			case m := <-msgs:
				ids = append(ids, m.Payload)
			case <-ctx.Done():
				return
			}
			timer := time.NewTimer(naiveMaxWait)
		fill:
			for len(ids) < naiveBatch {
				select {
				case m := <-msgs:
					ids = append(ids, m.Payload)
				case <-timer.C:
					break fill
				}
			}
			timer.Stop()
			load := r.rdb.Pipeline()
			cmds := make([]*redis.MapStringStringCmd, len(ids))
			for i, id := range ids {
				cmds[i] = load.HGetAll(ctx, orderPrefix+id)
			}
			if _, err := load.Exec(ctx); err != nil {
				return
			}
			write := r.rdb.Pipeline()
			for i, id := range ids {
				o := cmds[i].Val()
				ts, _ := strconv.ParseInt(o["ts"], 10, 64)
				hour := time.Unix(ts, 0).UTC().Hour()
				off := strconv.FormatInt(int64(hour+1)*bits, 10)
				write.Do(ctx, "BITFIELD", "sales_histogram:time_of_day", "OVERFLOW", overflow, "INCRBY", counter, off, o["qty"])
				write.Do(ctx, "BITFIELD", "sales_histogram:time_of_day:"+o["event"], "OVERFLOW", overflow, "INCRBY", counter, off, o["qty"])
				write.SAdd(ctx, "sales:"+o["event"], id)
				write.Do(ctx, "HINCRBYFLOAT", "sales_summary", o["event"]+":total_sales", o["cost"])
				write.Do(ctx, "HINCRBY", "sales_summary", o["event"]+":total_tickets_sold", o["qty"])
				write.SAdd(ctx, "invoices:"+o["who"], id)
			}
			if _, err := write.Exec(ctx); err != nil {
				return
			}
			r.applied.Add(int64(len(ids)))
		}
	}()
}

func (r *naive) pids() []int { return nil }

func (r *naive) stop(*testing.B) {
	r.cancel()
	<-r.done
	_ = r.rdb.Close()
}

// waitCount waits until r applied n orders.
func (r *naive) waitCount(b *testing.B, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for r.applied.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("naive program applied %d of %d orders within 5 minutes", r.applied.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// scriptCommands are the commands eventhost's apply script runs; INFO
// commandstats counts them on their own too, inside EVALSHA's time.
var scriptCommands = map[string]bool{
	"hset": true, "hsetnx": true, "hmget": true, "hget": true, "type": true, "get": true, "getrange": true, "pfcount": true,
	"hincrby": true, "hincrbyfloat": true, "sadd": true, "zincrby": true, "pfadd": true,
	"bitfield": true, "incrby": true, "xadd": true, "xack": true, "xdel": true,
	"sintercard": true, "zintercard": true, "exists": true, "hdel": true,
}

// consumerMicros reads INFO commandstats and returns the Redis time spent
// for the consumer, in µs: everything but the producer's HSET and PUBLISH,
// and without counting a script's inner commands twice.
func consumerMicros(b *testing.B, rdb *redis.Client) (total float64, per map[string]float64, calls map[string]int64) {
	stats, err := redistest.CommandStats(context.Background(), rdb)
	if err != nil {
		b.Fatal(err)
	}
	per, calls = map[string]float64{}, map[string]int64{}
	scripts := false
	for name, st := range stats {
		per[name], calls[name] = st.Usec, st.Calls
		scripts = scripts || name == "evalsha" || name == "eval"
	}
	for name, us := range per {
		switch {
		case name == "publish" || name == "hset" || name == "config" || name == "info" || name == "flushall":
		case scripts && scriptCommands[name]:
		default:
			total += us
		}
	}
	return total, per, calls
}

// redisCPU is the CPU time Redis has used so far, in seconds (INFO cpu).
func redisCPU(b *testing.B, rdb redis.Cmdable) float64 {
	cpu, err := redistest.CPU(context.Background(), rdb)
	if err != nil {
		b.Fatal(err)
	}
	return cpu
}
