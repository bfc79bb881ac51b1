package client_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/eventhost/eventhost/sdk/client"
	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

// rawPlugin is a plugin written against the wire protocol rather than the
// SDK, as one in another language is: its Describe says stream, and
// stream is what it does on ProcessStream.
type rawPlugin struct {
	pluginv1.UnimplementedPluginServer
	stream func(st pluginv1.Plugin_ProcessStreamServer) error
	// noStream: Describe does not say stream, and the host makes calls.
	noStream bool
}

func (p rawPlugin) Describe(context.Context, *pluginv1.DescribeRequest) (*pluginv1.DescribeResponse, error) {
	return &pluginv1.DescribeResponse{Name: "raw", Version: "1", Keys: []string{"total"}, Stream: !p.noStream}, nil
}

func (p rawPlugin) ProcessStream(st pluginv1.Plugin_ProcessStreamServer) error { return p.stream(st) }

// answer is what a correct plugin answers to req (sent as messages, since
// rawPlugin does not say packed): INCRBY total by each order's qty, with
// the request's seq.
func answer(req *pluginv1.ProcessRequest) *pluginv1.ProcessResponse {
	resp := &pluginv1.ProcessResponse{Seq: req.GetSeq()}
	for i, o := range req.GetOrders() {
		resp.Results = append(resp.Results, &pluginv1.Result{Index: uint32(i), Effects: []*pluginv1.Effect{
			{Command: "INCRBY", Key: "total", Args: []string{strconv.FormatInt(o.GetQty(), 10)}},
		}})
	}
	return resp
}

// serveRaw serves p over a real gRPC connection on a Unix socket and
// returns a described client, the socket's path, the server and the
// connection.
func serveRaw(t *testing.T, p pluginv1.PluginServer) (*client.Client, string, *grpc.Server, *grpc.ClientConn) {
	t.Helper()
	srv := grpc.NewServer()
	pluginv1.RegisterPluginServer(srv, p)
	c, sock, conn := connect(t, srv)
	return c, sock, srv, conn
}

// processWithin runs c.Process and fails the test when it takes longer
// than limit: the host must never hang on a plugin beyond the call's ctx.
func processWithin(t *testing.T, c *client.Client, ctx context.Context, limit time.Duration, qty ...int64) (results []int64, err error) {
	t.Helper()
	type out struct {
		qty []int64
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := c.Process(ctx, orders("e", qty...))
		var got []int64
		for _, r := range res {
			if len(r.Effects) == 1 && len(r.Effects[0].Args) == 1 {
				n, _ := strconv.ParseInt(r.Effects[0].Args[0], 10, 64)
				got = append(got, n)
			}
		}
		done <- out{got, err}
	}()
	select {
	case o := <-done:
		return o.qty, o.err
	case <-time.After(limit):
		t.Fatalf("a batch took more than %s", limit)
		return nil, nil
	}
}

// A plugin that answers a request twice (or answers one it was never
// sent) must not have its surplus answer taken for the next batch's: a
// Process call refuses a second answer, and so must the stream.
func TestStreamSurplusAnswerIsNotTheNextBatchs(t *testing.T) {
	for _, tt := range []struct {
		name   string
		stream func(st pluginv1.Plugin_ProcessStreamServer) error
	}{
		{"answers twice", func(st pluginv1.Plugin_ProcessStreamServer) error {
			for {
				req, err := st.Recv()
				if err != nil {
					return nil
				}
				_ = st.Send(answer(req))
				_ = st.Send(answer(req))
			}
		}},
		{"answers before the request", func(st pluginv1.Plugin_ProcessStreamServer) error {
			_ = st.Send(answer(&pluginv1.ProcessRequest{Orders: []*pluginv1.Order{{Id: "x", Qty: 99}}}))
			for {
				req, err := st.Recv()
				if err != nil {
					return nil
				}
				_ = st.Send(answer(req))
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _, _ := serveRaw(t, rawPlugin{stream: tt.stream})
			for i := int64(1); i <= 4; i++ {
				got, err := processWithin(t, c, context.Background(), 5*time.Second, i)
				if err == nil && (len(got) != 1 || got[0] != i) {
					t.Fatalf("batch %d got the answer %v, not its own", i, got)
				}
			}
		})
	}
}

// A plugin that ends its stream, with a status or without, after some
// answers: the host neither hangs nor pairs an answer with the wrong
// batch, and the batch that found the stream ended fails as a call that
// got no answer would.
func TestStreamEndedByThePlugin(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  error
		want codes.Code
	}{
		{"returns nil", nil, codes.Internal},
		{"returns a status", status.Error(codes.InvalidArgument, "bye"), codes.InvalidArgument},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _, _ := serveRaw(t, rawPlugin{stream: func(st pluginv1.Plugin_ProcessStreamServer) error {
				for range 2 {
					req, err := st.Recv()
					if err != nil {
						return nil
					}
					_ = st.Send(answer(req))
				}
				// Read the third request, and end the stream without
				// answering it.
				_, _ = st.Recv()
				return tt.end
			}})
			for i := int64(1); i <= 7; i++ {
				got, err := processWithin(t, c, context.Background(), 5*time.Second, i)
				if i%3 == 0 {
					if status.Code(err) != tt.want {
						t.Fatalf("batch %d, the third on its stream: %v, want %s", i, err, tt.want)
					}
					continue
				}
				if err != nil || len(got) != 1 || got[0] != i {
					t.Fatalf("batch %d: %v, %v, want its own answer", i, got, err)
				}
			}
		})
	}
}

// The call's ctx bounds opening the stream too: when the plugin's end of
// the connection has gone quiet (here: something accepts the connection
// and never speaks), the batch fails at its deadline, as a Process call
// does, and not when gRPC gives up connecting (20 s) with Unavailable,
// which the host takes for a crash.
func TestStreamOpenIsBoundedByTheCallsDeadline(t *testing.T) {
	for _, noStream := range []bool{true, false} {
		t.Run(map[bool]string{true: "call", false: "stream"}[noStream], func(t *testing.T) {
			c, sock, srv, conn := serveRaw(t, rawPlugin{noStream: noStream, stream: func(st pluginv1.Plugin_ProcessStreamServer) error { return nil }})
			srv.Stop() // closes the connection, and removes the socket
			wait, cancelWait := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancelWait()
			for conn.GetState() == connectivity.Ready && conn.WaitForStateChange(wait, connectivity.Ready) {
			}
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			go func() {
				var held []net.Conn
				for {
					conn, err := l.Accept()
					if err != nil {
						for _, c := range held {
							c.Close()
						}
						return
					}
					held = append(held, conn)
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err = processWithin(t, c, ctx, 5*time.Second, 1)
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("after %s: %v, want DeadlineExceeded", time.Since(start).Round(time.Millisecond), err)
			}
		})
	}
}
