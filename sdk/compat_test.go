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

// The server reuses its storage from call to call (decoded orders,
// Effects), but never an answer: an answer, and the results the host cuts
// from it, read the same after later calls, as do the strings a plugin
// built for an earlier batch.
func TestServerAnswerSurvivesLaterCalls(t *testing.T) {
	for name, p := range tutorialPlugins {
		t.Run(name, func(t *testing.T) {
			srv := newServer(p)
			first := benchOrders(300)
			later := benchOrders(50)
			for i := range later {
				later[i].ID, later[i].Event, later[i].Who = "later-"+later[i].ID, "Later", "later"
				later[i].TS += 3600 * 5
			}
			resp, err := srv.Process(context.Background(), ProcessRequestToProto(first, true))
			if err != nil {
				t.Fatal(err)
			}
			got := ResultsFromProto(resp, len(first))
			for range 3 {
				if _, err := srv.Process(context.Background(), ProcessRequestToProto(later, true)); err != nil {
					t.Fatal(err)
				}
			}
			if want := ProcessBatch(p, first); !reflect.DeepEqual(got, want) {
				t.Errorf("after later calls, the first answer reads %+v\nwant %+v", got[:3], want[:3])
			}
		})
	}
}
