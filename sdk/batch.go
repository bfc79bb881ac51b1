package sdk

import (
	"fmt"
	"runtime/debug"
)

// Result is what a plugin made of one order: its effects, or the reason it
// could not handle it.
type Result struct {
	Effects []Effect
	Err     string
}

// ProcessBatch runs p.Handle over orders and returns one Result per order, in
// order. A panic in Handle fails only that order. The gRPC adapter and the
// host's in-process reference both go through here, so they behave the same.
func ProcessBatch(p Plugin, orders []Order) []Result {
	results := make([]Result, len(orders))
	var out Effects
	for i := range orders {
		out.Reset()
		if err := handleOne(p, orders[i], &out); err != nil {
			results[i].Err = err.Error()
			continue
		}
		results[i].Effects = append([]Effect(nil), out.List()...)
	}
	return results
}

func handleOne(p Plugin, o Order, out *Effects) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic handling order %s: %v\n%s", o.ID, r, debug.Stack())
		}
	}()
	return p.Handle(o, out)
}
