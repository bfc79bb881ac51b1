package main

import (
	"fmt"
	"strings"

	"github.com/eventhost/eventhost/sdk"
)

// Keys written: every healthy order's id goes into KeyOrders; a big answer
// writes KeyBig.
const (
	KeyPattern = "poison:*"
	KeyOrders  = "poison:orders"
	KeyBig     = "poison:big"
)

// The id prefixes that select a poison order's behaviour.
const (
	PrefixHang    = "hang-"    // block forever: the host's timeout must fire
	PrefixCrash   = "crash-"   // panic in a goroutine, outside the SDK's recover: the process dies
	PrefixBig     = "big-"     // answer more than sdk.MaxMessageBytes for this order alone
	PrefixBadText = "badtext-" // fail with error text that is not UTF-8
)

// bigArgs and bigArgBytes make a big answer: each argument is under
// sdk.MaxArgBytes, all of them together over sdk.MaxMessageBytes. They
// share one string, so the plugin holds it once until it encodes the answer.
const (
	bigArgs     = 5
	bigArgBytes = 60_000_000
)

// poison is the plugin; it has no settings.
type poison struct{}

var _ sdk.Plugin = (*poison)(nil)

// Describe implements sdk.Plugin.
func (*poison) Describe() sdk.Description {
	return sdk.Description{Name: "poison", Version: "0.0.0-test", Keys: []string{KeyPattern}}
}

// Configure implements sdk.Plugin.
func (*poison) Configure(sdk.Config) error { return nil }

// Handle implements sdk.Plugin.
func (*poison) Handle(o sdk.Order, out *sdk.Effects) error {
	switch {
	case strings.HasPrefix(o.ID, PrefixHang):
		select {}
	case strings.HasPrefix(o.ID, PrefixCrash):
		go func() { panic(fmt.Sprintf("poison order %s", o.ID)) }()
		select {}
	case strings.HasPrefix(o.ID, PrefixBig):
		big := strings.Repeat("x", bigArgBytes)
		args := make([]string, 0, 2*bigArgs)
		for i := range bigArgs {
			args = append(args, fmt.Sprint(i), big)
		}
		out.Add("HSET", KeyBig, args...)
		return nil
	case strings.HasPrefix(o.ID, PrefixBadText):
		return sdk.Permanent(fmt.Errorf("order %s: field \xff\xfe is not UTF-8", o.ID))
	}
	out.SAdd(KeyOrders, o.ID)
	return nil
}
