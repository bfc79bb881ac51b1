package apply_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/sdk"
)

// BenchmarkApplyRedisTime applies tutorial-like batches (512 orders, three
// plugins, 30 events, a customer each) and reports the Redis time per order
// that INFO commandstats gives the script, and the Redis CPU time per order
// (INFO cpu) of the script next to that of the tutorial's six commands per
// order sent the naive way, pipelined without exactly-once, for the same
// batch (on keys of their own): naive-ratio is script / naive. Batches
// alternate between the two ways the script checks orders: the lean check
// (no order's markers read, as the pipeline applies them) and every order's
// markers read; exact-naive-ratio is the latter's.
func BenchmarkApplyRedisTime(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client()
	ctx := context.Background()
	a := apply.New(rdb, dlStream)
	// readAll reads every order's markers, as without the lean check.
	readAll := apply.New(rdb, dlStream)
	if err := apply.CutScript(readAll, map[string]string{"local lean = norders > 0 and": "local lean = false and"}); err != nil {
		b.Fatal(err)
	}
	perBatch := batchSize()
	runOne(b, rdb, a)
	total := 0
	b.ResetTimer()
	rdb.ConfigResetStat(ctx)
	cpu, naiveCPU := 0.0, 0.0
	exactCPU, exactNaiveCPU := 0.0, 0.0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		writes := tutorialBatch(b, rdb, strconv.Itoa(i), perBatch)
		exact := i%2 == 1
		naive := naiveBatch(rdb, strconv.Itoa(i), perBatch)
		before := redisCPU(b, rdb)
		if _, err := naive.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		naiveSpent := redisCPU(b, rdb) - before
		b.StartTimer()
		before = redisCPU(b, rdb)
		applier := a
		if exact {
			applier = readAll
		}
		if _, err := applier.Apply(ctx, apply.Batch{Writes: writes}); err != nil {
			b.Fatal(err)
		}
		spent := redisCPU(b, rdb) - before
		if exact {
			exactCPU, exactNaiveCPU = exactCPU+spent, exactNaiveCPU+naiveSpent
		} else {
			cpu, naiveCPU = cpu+spent, naiveCPU+naiveSpent
		}
		total += perBatch
	}
	b.StopTimer()
	us := commandMicros(b, rdb)
	b.ReportMetric(us["evalsha"]/float64(total), "redis-us/order")
	lean := float64((b.N + 1) / 2 * perBatch)
	b.ReportMetric(cpu*1e6/lean, "redis-cpu-us/order")
	b.ReportMetric(naiveCPU*1e6/lean, "naive-redis-cpu-us/order")
	b.ReportMetric(cpu/naiveCPU, "naive-ratio")
	if exactNaiveCPU > 0 {
		b.ReportMetric(exactCPU/exactNaiveCPU, "exact-naive-ratio")
	}
	var inner []string
	for name, v := range us {
		if name != "evalsha" && name != "hset" {
			inner = append(inner, fmt.Sprintf("%s=%.2f", name, v/float64(total)))
		}
	}
	b.Logf("per order: evalsha %.2f µs, of which commands: %s", us["evalsha"]/float64(total), strings.Join(inner, " "))
}

func commandMicros(b *testing.B, rdb *redis.Client) map[string]float64 {
	stats, err := redistest.CommandStats(context.Background(), rdb)
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for name, st := range stats {
		out[name] = st.Usec
	}
	return out
}

// redisCPU is the CPU time Redis has used, in seconds (INFO cpu): unlike
// commandstats' wall-clock times it does not grow when a busy machine
// deschedules Redis.
func redisCPU(b *testing.B, rdb *redis.Client) float64 {
	cpu, err := redistest.CPU(context.Background(), rdb)
	if err != nil {
		b.Fatal(err)
	}
	return cpu
}

// batchSize is the orders per batch of the apply benchmarks: 512, or
// BENCH_APPLY_BATCH.
func batchSize() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_APPLY_BATCH")); err == nil && n > 0 {
		return n
	}
	return 512
}

// runOne applies one order through a, so that run 1 is there before the
// first batch's load: a load that saw no run reads every order, and the
// benchmarks' batches are meant to use the lean check.
func runOne(b *testing.B, rdb *redis.Client, a *apply.Applier) {
	ctx := context.Background()
	if err := rdb.HSet(ctx, orderKey("warm-up"), "ts", "1700000000", "qty", "3", "cost", "12.5", "event", "rock", "who", "ann").Err(); err != nil {
		b.Fatal(err)
	}
	if _, err := a.Apply(ctx, apply.Batch{Writes: []apply.Write{write("warm-up", "customer-invoices", eff("SADD", "warm-up", "1"))}}); err != nil {
		b.Fatal(err)
	}
}

// tutorialBatch stores perBatch orders, ids batch-0 on, and returns the
// bundled plugins' writes for them: 30 events, 24 hours, a customer each.
func tutorialBatch(b *testing.B, rdb *redis.Client, batch string, perBatch int) []apply.Write {
	ctx := context.Background()
	var writes []apply.Write
	pipe := rdb.Pipeline()
	for o := 0; o < perBatch; o++ {
		id := batch + "-" + strconv.Itoa(o)
		pipe.HSet(ctx, orderKey(id), "ts", "1700000000", "qty", "3", "cost", "12.5", "event", "rock", "who", "ann")
		event := "event-" + strconv.Itoa(o%30)
		var hist, summary, invoices sdk.Effects
		hist.BitfieldIncrBy("sales_histogram:time_of_day", "u32", 32*(1+int64(o%24)), 3, sdk.OverflowSat)
		hist.BitfieldIncrBy("sales_histogram:time_of_day:"+event, "u32", 32*(1+int64(o%24)), 3, sdk.OverflowSat)
		summary.SAdd("sales:"+event, id)
		summary.HIncrByFloat("sales_summary", event+":total_sales", 12.5)
		summary.HIncrBy("sales_summary", event+":total_tickets_sold", 3)
		invoices.SAdd("invoices:customer-"+id, id)
		writes = append(writes,
			write(id, "sales-histogram", hist.List()...),
			write(id, "events-summary", summary.List()...),
			write(id, "customer-invoices", invoices.List()...))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	return writes
}

// naiveBatch queues the tutorial's six commands per order for the orders
// of tutorialBatch, on keys of their own, as the naive program sends them.
func naiveBatch(rdb *redis.Client, batch string, perBatch int) redis.Pipeliner {
	ctx := context.Background()
	naive := rdb.Pipeline()
	for o := 0; o < perBatch; o++ {
		id := batch + "-" + strconv.Itoa(o)
		event := "event-" + strconv.Itoa(o%30)
		off := strconv.Itoa(32 * (1 + o%24))
		naive.Do(ctx, "BITFIELD", "naive:sales_histogram:time_of_day", "OVERFLOW", "SAT", "INCRBY", "u32", off, "3")
		naive.Do(ctx, "BITFIELD", "naive:sales_histogram:time_of_day:"+event, "OVERFLOW", "SAT", "INCRBY", "u32", off, "3")
		naive.SAdd(ctx, "naive:sales:"+event, id)
		naive.Do(ctx, "HINCRBYFLOAT", "naive:sales_summary", event+":total_sales", "12.5")
		naive.Do(ctx, "HINCRBY", "naive:sales_summary", event+":total_tickets_sold", "3")
		naive.SAdd(ctx, "naive:invoices:customer-"+id, id)
	}
	return naive
}

// BenchmarkApplyScriptParts tells where the apply script's Redis time per
// order goes, by commandstats (the figure issue 10 compares with the naive
// commands'), on the batches of BenchmarkApplyRedisTime applied as the
// pipeline applies them (lean check). Batch by batch it turns between the
// script and copies of it with one part cut out: the done markers' HSET,
// the effects' commands, and everything (the script returns before it
// reads its arguments, so what is left is passing them in). Each variant's
// µs per order is reported with the naive commands' for the same batches;
// a part's cost is the script's figure less its variant's.
func BenchmarkApplyScriptParts(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client()
	ctx := context.Background()
	perBatch := batchSize()
	variants := scriptParts()
	appliers := partAppliers(b, rdb, variants)
	runOne(b, rdb, appliers[0])
	spent := make([]float64, len(variants)) // evalsha µs, by variant
	naiveSpent, batches := 0.0, make([]int, len(variants))
	evalsha := func() float64 { return commandMicros(b, rdb)["evalsha"] }
	naiveMicros := func() float64 {
		us := commandMicros(b, rdb)
		return us["bitfield"] + us["sadd"] + us["hincrbyfloat"] + us["hincrby"]
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		v := i % len(variants)
		writes := tutorialBatch(b, rdb, strconv.Itoa(i), perBatch)
		naive := naiveBatch(rdb, strconv.Itoa(i), perBatch)
		before := naiveMicros()
		if _, err := naive.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		naiveSpent += naiveMicros() - before
		before = evalsha()
		b.StartTimer()
		if _, err := appliers[v].Apply(ctx, apply.Batch{Writes: writes}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		spent[v] += evalsha() - before
		batches[v]++
	}
	naivePerOrder := naiveSpent / float64(b.N*perBatch)
	b.ReportMetric(naivePerOrder, "naive-us/order")
	var parts []string
	for v, variant := range variants {
		if batches[v] == 0 {
			continue
		}
		perOrder := spent[v] / float64(batches[v]*perBatch)
		b.ReportMetric(perOrder, variant.name+"-us/order")
		parts = append(parts, fmt.Sprintf("%s %.2f", variant.name, perOrder))
	}
	b.Logf("commandstats µs per order: naive commands %.2f; evalsha: %s", naivePerOrder, strings.Join(parts, ", "))
}

// scriptPart is apply.lua with one part cut out (nil: the script whole).
type scriptPart struct {
	name string
	cut  map[string]string // apply.lua's text → what replaces it
}

// scriptParts are the variants the part benchmarks turn between: the
// script, then without the done markers' HSET, without the effects'
// commands, and with everything cut but passing the arguments in.
func scriptParts() []scriptPart {
	return []scriptPart{
		{"script", nil},
		{"no-markers", map[string]string{
			"local r = redis.pcall('HSETNX', KEYS[q], done_list, list)":     "local r = 1",
			"redis.call('HSET', KEYS[q], done_list, list)":                  "local _ = 0",
			"redis.call('HSET', KEYS[q], done_list, now_ms, unpack(pairs))": "local _ = 0",
			"        redis.call('HSET', KEYS[q], unpack(pairs))":            "        local _ = 0",
		}},
		{"no-effects", map[string]string{
			"redis.call(cmd, KEYS[k + o], ARGV[i + o])":                   "local _ = 0",
			"redis.call(cmd, KEYS[k + o], unpack(ARGV, i, i + argc - 1))": "local _ = 0",
		}},
		{"arguments-only", map[string]string{"local now, now_ms = ARGV[1], ARGV[2]\n": "do return { 1 } end\n"}},
	}
}

// partAppliers returns an Applier per variant, each running its script.
func partAppliers(b *testing.B, rdb *redis.Client, variants []scriptPart) []*apply.Applier {
	appliers := make([]*apply.Applier, len(variants))
	for v, variant := range variants {
		appliers[v] = apply.New(rdb, dlStream)
		if err := apply.CutScript(appliers[v], variant.cut); err != nil {
			b.Fatalf("%s: %v", variant.name, err)
		}
	}
	return appliers
}

// BenchmarkApplyInstructions counts the instructions Redis executes for the
// apply script and for the naive commands, on the same tutorial batches,
// with Redis run under callgrind (valgrind). Unlike commandstats' times the
// counts do not move with the machine's load, so one run compares the two
// exactly: it is issue 10's "Redis time per order at or below the naive
// program's", in instructions. script-instr/order is EVALSHA's count with
// the lean check (what commandstats times for it); naive-instr/order is the
// six commands' (Redis' call(), which commandstats times: not reading their
// requests nor writing their replies). The script's parts are counted as
// BenchmarkApplyScriptParts times them: a part's count is the script's less
// its variant's. Each b.N is one batch per variant and one naive batch;
// `-benchtime 4x` is plenty (Redis runs some 50 times slower under it).
func BenchmarkApplyInstructions(b *testing.B) {
	srv := redistest.StartCallgrind(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: time.Minute, WriteTimeout: time.Minute})
	defer rdb.Close()
	ctx := context.Background()
	variants := scriptParts()
	appliers := partAppliers(b, rdb, variants)
	perBatch := batchSize()
	for _, a := range appliers { // each script loaded (EVAL) before the counts
		runOne(b, rdb, a)
	}
	b.ResetTimer()
	b.StopTimer()
	batch := func(i, v int) string { return strconv.Itoa(i) + "-" + strconv.Itoa(v) }
	naive := make([]redis.Pipeliner, b.N)
	writes := make([][][]apply.Write, b.N) // by batch, then variant
	for i := range b.N {
		naive[i] = naiveBatch(rdb, strconv.Itoa(i), perBatch)
		writes[i] = make([][]apply.Write, len(variants))
		for v := range variants {
			writes[i][v] = tutorialBatch(b, rdb, batch(i, v), perBatch)
		}
	}
	srv.Zero(b)
	for _, p := range naive {
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	naiveCount := srv.Dump(b)["call"]
	counts := make([]int64, len(variants))
	for i := range b.N {
		for v := range variants {
			srv.Zero(b)
			b.StartTimer()
			if _, err := appliers[v].Apply(ctx, apply.Batch{Writes: writes[i][v]}); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			counts[v] += srv.Dump(b)["evalShaCommand"]
		}
	}
	if naiveCount == 0 || counts[0] == 0 {
		b.Fatalf("no counts for call (%d) or evalShaCommand (%d): is redis-server stripped of its symbols?", naiveCount, counts[0])
	}
	orders := float64(b.N * perBatch)
	b.ReportMetric(float64(naiveCount)/orders, "naive-instr/order")
	parts := []string{fmt.Sprintf("naive commands %.0f", float64(naiveCount)/orders)}
	for v, variant := range variants {
		b.ReportMetric(float64(counts[v])/orders, variant.name+"-instr/order")
		parts = append(parts, fmt.Sprintf("%s %.0f", variant.name, float64(counts[v])/orders))
	}
	b.ReportMetric(float64(counts[0])/float64(naiveCount), "script/naive")
	b.Logf("Redis instructions per order: %s; script / naive %.3f", strings.Join(parts, ", "), float64(counts[0])/float64(naiveCount))
}
