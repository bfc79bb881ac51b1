package sdk

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Result is what a plugin made of one order: its effects, or the reason it
// could not handle it.
type Result struct {
	Effects []Effect
	Err     string
	// Permanent says a retry cannot help: the host dead-letters the order
	// for this plugin at once instead of retrying it.
	Permanent bool
}

// PermanentError marks an error from Handle that no retry can fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so the host dead-letters the order at once. Errors
// Handle returns unwrapped are taken as transient: the host retries the order
// on this plugin (with backoff, up to max_attempts) before dead-lettering it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
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
			var perm *PermanentError
			results[i].Err = err.Error()
			results[i].Permanent = errors.As(err, &perm)
			continue
		}
		results[i].Effects = append([]Effect(nil), out.List()...)
	}
	return results
}

func handleOne(p Plugin, o Order, out *Effects) (err error) {
	defer func() {
		if r := recover(); r != nil {
			// A panic is a bug: retrying the same order hits it again.
			err = Permanent(fmt.Errorf("panic handling order %s: %v\n%s", o.ID, r, debug.Stack()))
		}
	}()
	return p.Handle(o, out)
}
