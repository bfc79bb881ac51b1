package client

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

// recorder is a plugin stub that keeps the last request it was sent.
type recorder struct {
	pluginv1.PluginClient
	packed bool
	last   *pluginv1.ProcessRequest
}

func (r *recorder) Describe(context.Context, *pluginv1.DescribeRequest, ...grpc.CallOption) (*pluginv1.DescribeResponse, error) {
	return &pluginv1.DescribeResponse{Name: "p", Keys: []string{"k"}, Packed: r.packed}, nil
}

func (r *recorder) Process(_ context.Context, req *pluginv1.ProcessRequest, _ ...grpc.CallOption) (*pluginv1.ProcessResponse, error) {
	r.last = req
	return &pluginv1.ProcessResponse{}, nil
}

// An older plugin, which does not say it reads the compact encoding, gets
// its orders as messages; a current one gets them packed.
func TestProcessSendsTheEncodingThePluginReads(t *testing.T) {
	orders := []sdk.Order{{ID: "1", Event: "e", Who: "w"}}
	for _, packed := range []bool{false, true} {
		rec := &recorder{packed: packed}
		c := New(rec)
		if _, err := c.Describe(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Process(context.Background(), orders); err != nil {
			t.Fatal(err)
		}
		if gotPacked := len(rec.last.GetPackedOrders()) > 0; gotPacked != packed || (len(rec.last.GetOrders()) == 1) == packed {
			t.Errorf("plugin packed=%v: request has packed orders %v and %d order messages", packed, gotPacked, len(rec.last.GetOrders()))
		}
	}
}
