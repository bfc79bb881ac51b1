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
	// HostFailure is set by the host, never by a plugin, and never sent:
	// the plugin gave no usable answer for this order because its process
	// failed on the order alone (FailCrash, FailTimeout, FailSize,
	// FailProtocol), or it was disabled or given up on while the host
	// looked for the order that failed its batch (FailDisabled,
	// FailBatch). Err is then the host's reason and Permanent is true.
	HostFailure string
	// Attempts is, with HostFailure, how many calls holding the order
	// failed.
	Attempts int
}

// The values of Result.HostFailure.
const (
	FailCrash    = "crash"    // the process died
	FailTimeout  = "timeout"  // no answer within the plugin's timeout
	FailSize     = "size"     // the request or answer was over MaxMessageBytes
	FailProtocol = "protocol" // the answer could not be read
	FailDisabled = "disabled" // the plugin was disabled before the order was isolated
	FailBatch    = "batch"    // isolation was given up: too many calls for one batch
)

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
		if err := checkBounds(out.List()); err != nil {
			// Caught here, the plugin's own tests (sdktest) see it too.
			results[i] = Result{Err: fmt.Sprintf("answer for order %s: %v", orders[i].ID, err), Permanent: true}
			continue
		}
		results[i].Effects = keep(out.List())
	}
	return results
}

// keep copies effects, and their arguments, out of an Effects that is
// about to be reset: two allocations for one order's answer.
func keep(effects []Effect) []Effect {
	kept := append([]Effect(nil), effects...)
	n := 0
	for _, e := range effects {
		n += len(e.Args)
	}
	args := make([]string, 0, n)
	for j, e := range kept {
		if len(e.Args) > 0 {
			from := len(args)
			args = append(args, e.Args...)
			kept[j].Args = args[from:len(args):len(args)]
		}
	}
	return kept
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

// checkBounds checks one order's effects against the bounds the host
// decodes within (see MaxEffects), but for their total size: an answer
// over the message limit reaches the host as a failed call, which it
// isolates to this order.
func checkBounds(effects []Effect) error {
	if len(effects) > MaxEffects {
		return fmt.Errorf("%d effects, more than the %d the host accepts for one order", len(effects), MaxEffects)
	}
	for j, e := range effects {
		if len(e.Args) > MaxEffectArgs {
			return fmt.Errorf("effect %d has %d arguments, more than the %d the host accepts", j, len(e.Args), MaxEffectArgs)
		}
		long := max(len(e.Command), len(e.Key))
		for _, a := range e.Args {
			long = max(long, len(a))
		}
		if long > MaxArgBytes {
			return fmt.Errorf("effect %d holds a string of %d bytes, more than the %d the host accepts", j, long, MaxArgBytes)
		}
	}
	return nil
}
