package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"math/bits"

	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/client"
)

// A batch call can fail as a whole: the process dies or hangs on one order
// (a panic outside the SDK's per-order recover, an endless loop), or one
// order's request or answer is over the message limit. Retrying the whole
// batch fails again, and dead-lettering it would cost every order in it. So
// the host bisects: it retries the two halves of a failed call, and the
// halves of a failed half, until the failing orders stand alone. Those are
// convicted (dead-lettered for this plugin with the reason); every other
// order gets the plugin's answer. One poison order in a batch of n costs
// about 2·log2(n) extra calls, and log2(n)+1 crashes or timeouts.
//
// Blame. A crash or hang that bisection pins on an order is the order's
// fault and does not count towards restart_limit. One that no order
// explains (the halves all succeed: killed from outside, a flaky bug) is
// the plugin's, as are failed relaunches. A plugin that fails on anything
// convicts every order it is given: when more than restart_limit orders in
// a row are convicted with no successful call between them, the plugin is
// disabled. A size failure is never the plugin's fault and never restarts it.

// span is orders[lo:hi] of the batch being isolated.
type span struct{ lo, hi int }

func (s span) len() int { return s.hi - s.lo }

// extraCalls bounds the calls isolate makes for a batch of n orders beyond
// the first: enough to find two poison orders anywhere in it (at most four
// calls per halving) and to try one order max_attempts times alone. Past
// it, the orders not yet isolated fail as one batch (sdk.FailBatch), which
// counts once against the plugin.
func extraCalls(n, maxAttempts int) int {
	return 4*bits.Len(uint(n-1)) + maxAttempts
}

// isolate calls the plugin with batch and returns one result per order,
// bisecting failed calls (see above), decoding answers into store. Its
// error is only ctx's.
func (in *Instance) isolate(ctx context.Context, batch client.Batch, store *sdk.AnswerStore) ([]sdk.Result, error) {
	orders := batch.Orders()
	n := len(orders)
	// Allocated at the first failure: most batches take one call, whose
	// results are returned as they are.
	var results []sdk.Result
	var held []int // failed calls that held each order
	// explained[i]: order i failed alone (or was given up on), which
	// accounts for every failed call that held it.
	var explained []bool
	alloc := func() {
		if held == nil {
			results, held, explained = make([]sdk.Result, n), make([]int, n), make([]bool, n)
		}
	}
	var failed []span // failed calls the plugin may be blamed for
	budget := extraCalls(n, in.cfg.MaxAttempts)
	calls := 0
	gaveUp := false
	stack := []span{{0, n}}
	for len(stack) > 0 {
		sp := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if in.disabled {
			alloc()
			for i := sp.lo; i < sp.hi; i++ {
				results[i] = hostFailure(sdk.FailDisabled, held[i], fmt.Sprintf(
					"%v: the host was looking for the order that failed its batch (%d calls holding this order failed)", ErrDisabled, held[i]))
			}
			continue
		}
		if calls > budget {
			alloc()
			if !gaveUp {
				gaveUp = true
				in.logger.Error("gave up isolating the orders that fail the plugin; failing the rest of the batch", "calls", calls, "orders", n)
			}
			for i := sp.lo; i < sp.hi; i++ {
				explained[i] = true
				results[i] = hostFailure(sdk.FailBatch, held[i], fmt.Sprintf(
					"isolation given up: the plugin failed %d calls holding this order, and the host stopped looking for the order responsible after %d calls for a batch of %d orders",
					held[i], calls, n))
			}
			continue
		}
		if in.proc == nil {
			if err := in.relaunch(ctx); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				// A failed relaunch is blamed on the plugin, so this
				// ends, at the latest, in its being disabled.
				stack = append(stack, sp)
				continue
			}
		}
		res, f := in.call(ctx, batch.Slice(sp.lo, sp.hi), store)
		calls++
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if f == nil {
			if sp.len() == n {
				results = res
			} else {
				copy(results[sp.lo:sp.hi], res)
			}
			in.backoff.Reset()
			in.convicted = 0
			continue
		}
		alloc()
		for i := sp.lo; i < sp.hi; i++ {
			held[i]++
		}
		if f.kind != sdk.FailSize {
			failed = append(failed, sp)
		}
		if sp.len() > 1 {
			in.logger.Warn("batch call failed; retrying its halves to find the orders responsible",
				"kind", f.kind, "orders", sp.len(), "first", orders[sp.lo].ID, "error", f.err)
			mid := sp.lo + sp.len()/2
			stack = append(stack, span{mid, sp.hi}, span{sp.lo, mid}) // first half first
			continue
		}
		i := sp.lo
		if f.kind != sdk.FailSize && held[i] < in.cfg.MaxAttempts {
			// A crash that does not repeat is not the order's fault.
			in.logger.Warn("call failed for one order; trying it again alone",
				"kind", f.kind, "id", orders[i].ID, "attempt", held[i], "error", f.err)
			stack = append(stack, sp)
			continue
		}
		results[i] = hostFailure(f.kind, held[i], poisonReason(f, held[i], in.cfg.Timeout.String()))
		explained[i] = true
		in.logger.Error("poison order: it fails the plugin alone; dead-lettering it for this plugin",
			"kind", f.kind, "id", orders[i].ID, "attempts", held[i], "error", f.err)
		if f.kind == sdk.FailSize {
			continue
		}
		if in.convicted++; in.convicted > in.cfg.RestartLimit {
			in.disable(fmt.Sprintf("%d orders in a row failed it alone, with no successful call between them: the plugin fails on anything", in.convicted))
		}
	}
	if gaveUp && !in.disabled {
		in.blame()
	}
	for _, sp := range failed {
		if in.disabled {
			break
		}
		blamed := true
		for i := sp.lo; i < sp.hi && blamed; i++ {
			blamed = !explained[i]
		}
		if blamed {
			in.logger.Warn("a failed call is not explained by any of its orders; counting it against the plugin", "orders", sp.len())
			in.blame()
		}
	}
	return results, nil
}

// hostFailure is the result for an order the plugin gave no usable answer
// for.
func hostFailure(kind string, attempts int, reason string) sdk.Result {
	return sdk.Result{Err: reason, Permanent: true, HostFailure: kind, Attempts: attempts}
}

// poisonReason is the dead letter's reason for an order convicted of
// failing calls alone. The part before the first colon names the kind (the
// dead-letter metric's reason label); apart from a protocol error's text it
// depends only on the kind, the attempts and the timeout.
func poisonReason(f *callFailure, attempts int, timeout string) string {
	calls := fmt.Sprintf("%d calls holding it failed, the last with it alone", attempts)
	if attempts == 1 {
		calls = "1 call holding it alone failed"
	}
	switch f.kind {
	case sdk.FailCrash:
		return fmt.Sprintf("plugin crashed on this order: its process died handling it (%s)", calls)
	case sdk.FailTimeout:
		return fmt.Sprintf("plugin hung on this order: no answer within %s (%s)", timeout, calls)
	case sdk.FailSize:
		what := "the plugin's answer for this order"
		var tb *client.TooBigError
		if errors.As(f.err, &tb) && tb.Request {
			what = "the request for this order"
		}
		return fmt.Sprintf("message too big: %s is over the %d-byte limit (%s); the plugin was not restarted", what, sdk.MaxMessageBytes, calls)
	}
	return fmt.Sprintf("unreadable answer: the plugin's answer for this order could not be read (%s): %v", calls, f.err)
}
