package sdk

import (
	"context"
	"reflect"
	"testing"

	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

// echo writes one SADD per order, so answers can be compared.
type echo struct{}

func (echo) Describe() Description  { return Description{Name: "echo", Keys: []string{"e:*"}} }
func (echo) Configure(Config) error { return nil }
func (echo) Handle(o Order, out *Effects) error {
	out.SAdd("e:"+o.Event, o.ID)
	return nil
}

// A plugin answers in the encoding the request came in, so a host that
// predates the compact encoding (orders as messages) gets effects as
// messages, which is all it reads; a host that reads packed effects per
// order but not a packed answer gets those; a current host gets the whole
// answer packed. All decode to the same results.
func TestServerAnswersInTheRequestsEncoding(t *testing.T) {
	orders := []Order{{ID: "1", Channel: "c", Event: "a", Who: "w", Qty: 1}, {ID: "2", Channel: "c", Event: "b", Who: "w", Qty: 2}}
	srv := &server{impl: echo{}}
	want := ProcessBatch(echo{}, orders)
	for _, tt := range []struct {
		name string
		req  *pluginv1.ProcessRequest
		// what the answer must hold: effect messages, packed effects
		// per order, or packed results.
		messages, packedEffects, packedResults bool
	}{
		{"messages", ProcessRequestToProto(orders, false), true, false, false},
		{"packed orders, answer per order", &pluginv1.ProcessRequest{PackedOrders: packOrders(orders)}, false, true, false},
		{"packed orders and answer", ProcessRequestToProto(orders, true), false, false, true},
	} {
		resp, err := srv.Process(context.Background(), tt.req)
		if err != nil {
			t.Fatal(err)
		}
		var messages, packedEffects bool
		for _, r := range resp.GetResults() {
			messages = messages || len(r.GetEffects()) > 0
			packedEffects = packedEffects || len(r.GetPackedEffects()) > 0
		}
		if packedResults := len(resp.GetPackedResults()) > 0; messages != tt.messages || packedEffects != tt.packedEffects || packedResults != tt.packedResults {
			t.Errorf("%s: answer has effect messages %v, packed effects %v, packed results %v", tt.name, messages, packedEffects, packedResults)
		}
		got := ResultsFromProto(resp, len(orders))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: results %+v, want %+v", tt.name, got, want)
		}
	}
}

// A current plugin says it reads the compact encoding; the host only uses it
// then.
func TestDescriptionSaysPacked(t *testing.T) {
	resp, err := DescriptionToProto(echo{}.Describe())
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetPacked() {
		t.Error("DescribeResponse.packed is false: hosts would send this plugin messages")
	}
	if got := (&pluginv1.DescribeResponse{}).GetPacked(); got {
		t.Error("an older plugin's description must read as not packed")
	}
}
