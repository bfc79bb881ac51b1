package main

import (
	"reflect"
	"testing"

	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/sdktest"
)

// The orders that do not kill the process, through the real gRPC adapter.
func TestPoisonHandle(t *testing.T) {
	h := sdktest.Start(t, &poison{})
	h.MustConfigure(nil)
	got := h.Process(sdk.Order{ID: "1"}, sdk.Order{ID: PrefixBadText + "2"})
	if want := []sdk.Effect{{Command: "SADD", Key: KeyOrders, Args: []string{"1"}}}; !reflect.DeepEqual(got[0].Effects, want) || got[0].Err != "" {
		t.Errorf("healthy order: %+v, want %v", got[0], want)
	}
	if want := "order badtext-2: field \uFFFD is not UTF-8"; got[1].Err != want || !got[1].Permanent {
		t.Errorf("bad text: err %q (permanent %v), want %q, permanent", got[1].Err, got[1].Permanent, want)
	}
	h.CheckKeys(got[0].Effects)
}
