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
// messages, which is all it reads; a current host gets them packed. Both
// decode to the same results.
func TestServerAnswersInTheRequestsEncoding(t *testing.T) {
	orders := []Order{{ID: "1", Channel: "c", Event: "a", Who: "w", Qty: 1}, {ID: "2", Channel: "c", Event: "b", Who: "w", Qty: 2}}
	srv := &server{impl: echo{}}
	want := ProcessBatch(echo{}, orders)
	for _, packed := range []bool{false, true} {
		resp, err := srv.Process(context.Background(), ProcessRequestToProto(orders, packed))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.GetResults() {
			if gotPacked := len(r.GetPackedEffects()) > 0; gotPacked != packed || (len(r.GetEffects()) > 0) == packed {
				t.Errorf("request packed=%v: answer has packed effects %v and %d effect messages", packed, gotPacked, len(r.GetEffects()))
			}
		}
		got := ResultsFromProto(resp, len(orders))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("request packed=%v: results %+v, want %+v", packed, got, want)
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
