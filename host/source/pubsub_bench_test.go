package source_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/eventhost/eventhost/host/intake"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/source"
)

// BenchmarkPubSubReceive: ids published on a channel, received by the
// Pub/Sub source into the intake queue and taken from it in batches of up
// to 512, as the pipeline takes them. Another process (redis-cli --pipe)
// publishes, so the allocations counted are the host's intake alone:
// go-redis' receiving, the queue and the batch's string of ids.
//
//	go test ./host/source -run '^$' -bench PubSubReceive -benchmem
func BenchmarkPubSubReceive(b *testing.B) {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		b.Skip("needs redis-cli to publish from another process")
	}
	srv := redistest.Start(b)
	rdb := srv.Client()
	src := source.NewPubSub(rdb, []string{"purchase_orders"}, hclog.NewNullLogger(), metrics.New())
	subscribed := make(chan struct{})
	src.OnSubscribed = func(reconnect bool) {
		if !reconnect {
			close(subscribed)
		}
	}
	q := intake.NewQueue(1 << 16)
	go func() { _ = src.Run(b.Context(), q) }()
	<-subscribed

	// b.N rounds of 512 ids, written before the clock starts.
	const round = 512
	var cmds bytes.Buffer
	for i := range b.N * round {
		id := fmt.Sprintf("2020-%07d", i)
		fmt.Fprintf(&cmds, "*3\r\n$7\r\nPUBLISH\r\n$15\r\npurchase_orders\r\n$%d\r\n%s\r\n", len(id), id)
	}
	path := filepath.Join(b.TempDir(), "publish.resp")
	if err := os.WriteFile(path, cmds.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	in, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		b.Fatal(err)
	}
	pub := exec.Command("redis-cli", "-h", host, "-p", port, "--pipe")
	pub.Stdin = in // a file: no copying goroutine in this process

	batch := make([]orders.Ref, 0, round)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	if err := pub.Start(); err != nil {
		b.Fatal(err)
	}
	for got := 0; got < b.N*round; {
		<-q.Ready()
		batch, _ = q.Take(batch[:0], round)
		got += len(batch)
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	if err := pub.Wait(); err != nil {
		b.Fatal(err)
	}
	total := float64(b.N * round)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/id")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/total, "B/id")
}
