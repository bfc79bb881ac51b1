package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
	"github.com/eventhost/eventhost/host/redisconn"
)

// BenchmarkClusterThroughput runs eventhost (one host, the bundled plugins,
// Pub/Sub) on a single redis-server and on a Redis Cluster of 3 masters
// with a replica each, with and without WAIT, in turns within each round,
// and reports each one's orders/s, their ratio to the single node, and the
// Redis CPU time per order on every master (INFO cpu; the producer's
// writes included, the same in all three).
func BenchmarkClusterThroughput(b *testing.B) {
	n := envInt("BENCH_CLUSTER_ORDERS", 20000)
	rounds := envInt("BENCH_ROUNDS", 3)
	single := redistest.Start(b)
	cl := redistest.StartCluster(b, 3)
	type setup struct {
		name  string
		rdb   redis.UniversalClient
		redis string // the config's redis block
	}
	clusterBlock := func(wait int) string {
		q := make([]string, len(cl.Addrs()))
		for i, a := range cl.Addrs() {
			q[i] = strconv.Quote(a)
		}
		return fmt.Sprintf("redis {\n  cluster {\n    addresses = [%s]\n    wait_replicas = %d\n  }\n}", strings.Join(q, ", "), wait)
	}
	setups := []setup{
		{"single node", single.Client(), fmt.Sprintf("redis { address = %q }", single.Addr)},
		{"cluster, 3 masters, wait_replicas = 1", cl.Client(), clusterBlock(1)},
		{"cluster, 3 masters, wait_replicas = 0", cl.Client(), clusterBlock(0)},
	}
	rates := make([][]float64, len(setups))
	cpus := make([][][]float64, len(setups)) // per setup, per round, per master: µs/order
	for i := 0; i < b.N*rounds; i++ {
		for s, st := range setups {
			rate, perNode := measureOn(b, st.rdb, st.redis, n, int64(i))
			rates[s] = append(rates[s], rate)
			cpus[s] = append(cpus[s], perNode)
		}
	}
	fmt.Printf("cluster throughput (%d orders, one host, median of %d rounds, the three in turn each round):\n", n, rounds)
	fmt.Printf("  %-40s %10s %8s   %s\n", "", "orders/s", "ratio", "redis CPU µs/order per master (sum)")
	base := median(rates[0])
	for s, st := range setups {
		r := median(rates[s])
		per := medianPerNode(cpus[s])
		var sum float64
		parts := make([]string, len(per))
		for j, v := range per {
			sum += v
			parts[j] = fmt.Sprintf("%.1f", v)
		}
		fmt.Printf("  %-40s %10.0f %8.2f   %s (%.1f)\n", st.name, r, r/base, strings.Join(parts, " / "), sum)
		key := strings.NewReplacer(" ", "", ",", "-", "=", "").Replace(st.name)
		b.ReportMetric(r, key+"-orders/s")
		b.ReportMetric(sum, key+"-redis-cpu-us/order")
	}
	fmt.Printf("  per round, cluster(wait 1)/single: %s; cluster(wait 0)/single: %s\n", rateRatios(rates[1], rates[0]), rateRatios(rates[2], rates[0]))
}

// rateRatios formats a[i]/b[i] for each round.
func rateRatios(a, b []float64) string {
	parts := make([]string, len(a))
	for i := range a {
		parts[i] = fmt.Sprintf("%.2f", a[i]/b[i])
	}
	return strings.Join(parts, " ")
}

// medianPerNode returns, per master, the median over rounds.
func medianPerNode(rounds [][]float64) []float64 {
	out := make([]float64, len(rounds[0]))
	for j := range out {
		var xs []float64
		for _, r := range rounds {
			if j < len(r) {
				xs = append(xs, r[j])
			}
		}
		out[j] = median(xs)
	}
	return out
}

// measureOn empties rdb's masters, starts a host with the redis block,
// publishes n orders as fast as it can and times publish → last order
// applied. It returns orders/s and each master's CPU µs per order.
func measureOn(b *testing.B, rdb redis.UniversalClient, redisBlock string, n int, seed int64) (float64, []float64) {
	ctx := context.Background()
	var nodes []*redis.Client
	err := redisconn.ForEachMaster(ctx, rdb, func(ctx context.Context, node redis.UniversalClient) error {
		c := node.(*redis.Client)
		nodes = append(nodes, c)
		if err := c.FlushAll(ctx).Err(); err != nil {
			return err
		}
		return c.ConfigResetStat(ctx).Err()
	})
	if err != nil {
		b.Fatal(err)
	}
	stop := startHostWith(b, rdb, redisBlock)
	defer stop()
	before := make([]float64, len(nodes))
	for i, c := range nodes {
		before[i] = redisCPU(b, c)
	}
	gen := publish.NewGenerator(seed + 1)
	start := time.Now()
	var last string
	for done := 0; done < n; {
		chunk := make([]publish.Order, min(256, n-done))
		for i := range chunk {
			chunk[i] = gen.Next()
		}
		// Every hash of a chunk is stored before its ids are announced:
		// a pipeline across nodes keeps no order between them.
		pipe := rdb.Pipeline()
		for _, o := range chunk {
			pipe.HSet(ctx, orderPrefix+o.ID, o.Fields()...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		pipe = rdb.Pipeline()
		for _, o := range chunk {
			pipe.Publish(ctx, channel, o.ID)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		done += len(chunk)
		last = chunk[len(chunk)-1].ID
	}
	waitApplied(b, rdb, last, plugins)
	rate := float64(n) / time.Since(start).Seconds()
	per := make([]float64, len(nodes))
	byCmd := map[string]float64{}
	for i, c := range nodes {
		per[i] = (redisCPU(b, c) - before[i]) * 1e6 / float64(n)
		_, cmds, _ := consumerMicros(b, c)
		for name, us := range cmds {
			byCmd[name] += us / float64(n)
		}
	}
	if os.Getenv("BENCH_STATS") != "" {
		var parts []string
		for name, us := range byCmd {
			if us >= 0.05 {
				parts = append(parts, fmt.Sprintf("%s=%.2f", name, us))
			}
		}
		sort.Strings(parts)
		fmt.Printf("%d masters: Redis µs per order by command, all masters (commandstats): %s\n", len(nodes), strings.Join(parts, " "))
	}
	return rate, per
}

// startHostWith starts eventhost with the bundled plugins on the redis
// block and waits until it registered its plugins (its first catch-up is
// over); it returns how to stop it.
func startHostWith(b *testing.B, rdb redis.UniversalClient, redisBlock string) func() {
	cfg := fmt.Sprintf(`
%s
source "pubsub" { channels = [%q] }
plugin_dir = %q
batch {
  max_orders = %d
  max_wait   = %q
}
log { level = "warn" }
plugin "sales-histogram" {
  config {
    counter  = %q
    overflow = %q
    timezone = %q
  }
}
plugin "events-summary" {}
plugin "customer-invoices" {}
`, redisBlock, channel, testbin.PluginDir(b), maxOrders, batchWait().String(),
		histogramConfig["counter"], histogramConfig["overflow"], histogramConfig["timezone"])
	path := filepath.Join(b.TempDir(), "bench.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(testbin.Eventhost(b), "run", "-config", path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(rdb.HGetAll(context.Background(), keyspace.RegistryKey).Val()) < len(plugins) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			b.Fatal("eventhost did not register its plugins within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
}
