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

// A batch is packed once, whichever of its parts is sent first, and a part
// (as isolation sends it) is exactly those orders packed, a window of the
// whole batch's encoding, in the storage NewBatch was offered.
func TestBatchPacksOnceAndSendsPartsAsWindows(t *testing.T) {
	orders := []sdk.Order{
		{ID: "1", Channel: "c", TS: 1627000000, Qty: 3, Cost: 120.75, Event: "Judo", Who: "ann"},
		{ID: "2", Event: "e", Who: "w", Extra: map[string]string{"coupon": "X1"}},
		{ID: "3", Event: "Rowing", Who: "bob", Qty: -1, TS: -5},
		{ID: "4"},
	}
	whole := func(orders []sdk.Order) []byte {
		rec := &recorder{packed: true}
		c := New(rec)
		if _, err := c.Describe(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Process(context.Background(), orders); err != nil {
			t.Fatal(err)
		}
		return rec.last.GetPackedOrders()
	}
	rec := &recorder{packed: true}
	c := New(rec)
	if _, err := c.Describe(context.Background()); err != nil {
		t.Fatal(err)
	}
	storage := make([]byte, 0, 4096)
	b := NewBatch(orders, storage)
	for _, part := range [][2]int{{1, 3}, {0, 4}, {3, 4}, {0, 1}, {2, 2}} {
		if _, err := c.ProcessBatch(context.Background(), b.Slice(part[0], part[1]), nil); err != nil {
			t.Fatal(err)
		}
		got, want := rec.last.GetPackedOrders(), whole(orders[part[0]:part[1]])
		if string(got) != string(want) {
			t.Errorf("orders %d to %d sent as %x, want %x", part[0], part[1], got, want)
		}
		at := len(whole(orders[:part[0]]))
		if len(got) > 0 && &got[0] != &storage[:cap(storage)][at] {
			t.Errorf("orders %d to %d are not sent as a window of the whole batch's encoding, in the storage offered", part[0], part[1])
		}
	}
	if buf := b.Buffer(); cap(buf) != cap(storage) || &buf[:1][0] != &storage[:1][0] {
		t.Errorf("Buffer does not return the storage offered")
	}
}
