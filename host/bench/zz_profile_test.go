package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/publish"
)

func BenchmarkZZProfileCluster(b *testing.B) {
	cl := redistest.StartCluster(b, 3)
	q := make([]string, len(cl.Addrs()))
	for i, a := range cl.Addrs() {
		q[i] = strconv.Quote(a)
	}
	addr := freeAddr(b)
	block := fmt.Sprintf("redis {\n  cluster {\n    addresses = [%s]\n  }\n}\nmetrics {\n listen = %q\n pprof = true\n}", strings.Join(q, ", "), addr)
	rdb := cl.Client()
	stop := startHostWith(b, rdb, block)
	defer stop()
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=8")
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		f, _ := os.Create("/tmp/ca/host.pprof")
		io.Copy(f, resp.Body)
		f.Close()
	}()
	pub := publish.NewPublisher(rdb, channel, orderPrefix)
	os, _ := pub.PublishMany(ctx, publish.NewGenerator(5), 60000, 0, nil)
	waitAppliedOn(b, rdb, os[len(os)-1].ID)
	<-done
	time.Sleep(time.Second)
}
