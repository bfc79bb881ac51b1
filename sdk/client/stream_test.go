package client_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/client"
	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

// counter is a plugin that adds each order's qty to one key, and holds an
// order whose event is "hang" until release is closed.
type counter struct {
	release chan struct{}
}

func (counter) Describe() sdk.Description {
	return sdk.Description{Name: "counter", Version: "1", Keys: []string{"total"}}
}

func (counter) Configure(sdk.Config) error { return nil }

func (c counter) Handle(o sdk.Order, out *sdk.Effects) error {
	if o.Event == "hang" {
		<-c.release
	}
	out.IncrBy("total", o.Qty)
	return nil
}

// calls counts what the plugin's server was asked over the wire.
type calls struct {
	unary, streams atomic.Int64
}

// serve runs the Go SDK's server for p over a real gRPC connection on a
// Unix socket and returns a described client. noStream makes the plugin's
// Describe say it does not serve ProcessStream, as a plugin built before it
// (or one in another language) does.
func serve(t *testing.T, p sdk.Plugin, noStream bool) (*client.Client, *calls) {
	t.Helper()
	n := &calls{}
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if info.FullMethod == pluginv1.Plugin_Process_FullMethodName {
				n.unary.Add(1)
			}
			resp, err := h(ctx, req)
			if d, ok := resp.(*pluginv1.DescribeResponse); ok && noStream {
				d.Stream = false
			}
			return resp, err
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			n.streams.Add(1)
			return h(srv, ss)
		}))
	if err := (&sdk.GRPCPlugin{Impl: p}).GRPCServer(nil, srv); err != nil {
		t.Fatal(err)
	}
	c, _, _ := connect(t, srv)
	return c, n
}

// connect serves srv on a Unix socket, dials it and returns the described
// client, the socket's path and the connection; all end with the test.
func connect(t *testing.T, srv *grpc.Server) (*client.Client, string, *grpc.ClientConn) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(pluginv1.NewPluginClient(conn))
	t.Cleanup(func() {
		c.Close()
		conn.Close()
		srv.Stop()
	})
	if _, err := c.Describe(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c, sock, conn
}

func orders(event string, qty ...int64) []sdk.Order {
	var out []sdk.Order
	for i, q := range qty {
		out = append(out, sdk.Order{ID: string(rune('a' + i)), Event: event, Who: "w", Qty: q})
	}
	return out
}

// wantTotals checks that results hold one INCRBY total per order, by qty.
func wantTotals(t *testing.T, results []sdk.Result, qty ...int64) {
	t.Helper()
	if len(results) != len(qty) {
		t.Fatalf("%d results for %d orders", len(results), len(qty))
	}
	for i, r := range results {
		effs := r.Effects
		if r.Err != "" || len(effs) != 1 || effs[0].Command != "INCRBY" || effs[0].Key != "total" ||
			len(effs[0].Args) != 1 || effs[0].Args[0] != strconv.FormatInt(qty[i], 10) {
			t.Fatalf("result %d: %+v, want INCRBY total %d", i, r, qty[i])
		}
	}
}

// Batch after batch goes on one stream, and each gets its own answer.
func TestBatchesShareOneStream(t *testing.T) {
	c, n := serve(t, counter{}, false)
	for i := int64(1); i <= 20; i++ {
		res, err := c.Process(context.Background(), orders("e", i, i+1))
		if err != nil {
			t.Fatal(err)
		}
		wantTotals(t, res, i, i+1)
	}
	if s, u := n.streams.Load(), n.unary.Load(); s != 1 || u != 0 {
		t.Fatalf("20 batches took %d streams and %d Process calls, want 1 and 0", s, u)
	}
}

// A plugin that does not say it serves ProcessStream gets Process calls.
func TestPluginWithoutStreamGetsCalls(t *testing.T) {
	c, n := serve(t, counter{}, true)
	for i := int64(1); i <= 3; i++ {
		res, err := c.Process(context.Background(), orders("e", i))
		if err != nil {
			t.Fatal(err)
		}
		wantTotals(t, res, i)
	}
	if s, u := n.streams.Load(), n.unary.Load(); s != 0 || u != 3 {
		t.Fatalf("3 batches took %d streams and %d Process calls, want 0 and 3", s, u)
	}
}

// A batch that outlives its deadline fails with the deadline's error, as
// a call would; its stream is dropped, and the next batch gets an answer
// of its own on a new one, never the late answer to the one before.
func TestDeadlineOnStreamLeavesTheNextBatchItsOwnAnswer(t *testing.T) {
	p := counter{release: make(chan struct{})}
	c, n := serve(t, p, false)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Process(ctx, orders("hang", 7))
	if status.Code(err) != codes.DeadlineExceeded || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("held batch: %v, want DeadlineExceeded", err)
	}
	close(p.release) // the plugin answers the first batch now, too late
	res, err := c.Process(context.Background(), orders("e", 3))
	if err != nil {
		t.Fatal(err)
	}
	wantTotals(t, res, 3)
	if s := n.streams.Load(); s != 2 {
		t.Fatalf("%d streams, want 2: the held batch's, then a new one", s)
	}
}

// Batches sent at once do not wait for each other's stream: one goes on
// it, the others as calls, and each gets its own answer.
func TestConcurrentBatchesEachGetTheirAnswer(t *testing.T) {
	c, n := serve(t, counter{}, false)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := int64(1); g <= 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); i < 20; i++ {
				res, err := c.Process(context.Background(), orders("e", g*100+i, g))
				if err != nil {
					errs <- err
					return
				}
				effs0, effs1 := res[0].Effects, res[1].Effects
				if len(effs0) != 1 || effs0[0].Args[0] != strconv.FormatInt(g*100+i, 10) || len(effs1) != 1 || effs1[0].Args[0] != strconv.FormatInt(g, 10) {
					errs <- errors.New("a batch got another batch's answer")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := n.streams.Load(); s != 1 {
		t.Fatalf("%d streams, want 1: no batch failed", s)
	}
}
