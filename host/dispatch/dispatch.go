// Package dispatch sends a batch of orders to every plugin that wants them,
// all plugins in parallel, and turns their answers into the writes and dead
// letters of one atomic apply.
package dispatch

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/pluginhost"
	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/client"
)

// Processor runs one plugin over a batch, returning one result per order.
// *pluginhost.Instance is the real one; Local runs a plugin in process.
// orders is only valid until Process returns: the Dispatcher reuses it.
type Processor interface {
	Name() string
	Process(ctx context.Context, orders []sdk.Order) ([]sdk.Result, error)
}

// BatchProcessor is a Processor that takes its batch as a client.Batch,
// packed once for every plugin that gets the same orders, and decodes the
// answer into storage the Dispatcher reuses from batch to batch (see
// Outcome.Release). *pluginhost.Instance is one.
type BatchProcessor interface {
	Processor
	ProcessBatch(ctx context.Context, batch client.Batch, store *sdk.AnswerStore) ([]sdk.Result, error)
}

var _ BatchProcessor = (*pluginhost.Instance)(nil)

// Target is a plugin with the channels it listens on and what it may write.
type Target struct {
	Processor Processor
	Channels  []string
	Policy    *policy.Policy
}

func (t Target) wants(channel string) bool {
	for _, c := range t.Channels {
		if c == channel {
			return true
		}
	}
	return false
}

// Local runs an sdk.Plugin in the host's own process, through the same batch
// loop as the gRPC adapter. It is the reference the benchmarks compare the
// plugin boundary against, and handy for dry runs.
type Local struct {
	Plugin sdk.Plugin
}

// Name implements Processor.
func (l Local) Name() string { return l.Plugin.Describe().Name }

// Process implements Processor.
func (l Local) Process(_ context.Context, orders []sdk.Order) ([]sdk.Result, error) {
	return sdk.ProcessBatch(l.Plugin, orders), nil
}

// Dispatcher fans batches out to its targets. The targets can be swapped
// (a reload) between batches, never during one.
type Dispatcher struct {
	// mu is held for reading by each Dispatch, from its first plugin call
	// to its outcome, and for writing by SetTargets: a batch sees one set
	// of targets, and a swap waits for the batch in flight.
	mu      sync.RWMutex
	targets []Target
	keyOf   func(id string) string

	// packBuffers hold packed batches' storage, reused once every call
	// that sent one returned; stores the storage answers were decoded
	// into, reused once their outcome is released.
	packBuffers freeList[[]byte]
	stores      freeList[*sdk.AnswerStore]
	// writes hold released outcomes' Writes; scratch what a dispatch
	// uses only while it runs.
	writes  freeList[[]apply.Write]
	scratch freeList[*scratch]
}

// New returns a Dispatcher; keyOf names an order's hash.
func New(targets []Target, keyOf func(id string) string) *Dispatcher {
	return &Dispatcher{targets: targets, keyOf: keyOf}
}

// SetTargets makes targets the ones every later batch goes to. It waits for
// the batch in flight, if any, which finishes on the old targets; once it
// returns, no batch uses a target left out of targets, so that one can be
// stopped. Targets are used in the order given.
func (d *Dispatcher) SetTargets(targets []Target) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.targets = targets
}

// Targets returns the current targets. The slice must not be modified.
func (d *Dispatcher) Targets() []Target {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.targets
}

// Failure is an (order, plugin) pair that produced no write.
type Failure struct {
	// Index is the order's position in the dispatched slice.
	Index  int
	Loaded orders.Loaded
	Plugin string
	Reason string
	// Attempts is how often the plugin tried the order in this dispatch: a
	// call that crashes or hangs is retried inside the plugin host, in
	// smaller and smaller parts, to find the orders responsible.
	Attempts int
	// Transient is true when another try may succeed (the plugin said so by
	// returning a plain error); refused effects, permanent errors and a
	// plugin that gave up after its own retries are not.
	Transient bool
}

// Outcome is what a dispatch produced.
type Outcome struct {
	// Writes are ordered by order, then by target, so each key sees its
	// increments in the order the ids arrived.
	Writes   []apply.Write
	Failures []Failure
	// Skipped counts, per plugin, orders it had already applied (a
	// duplicate delivery).
	Skipped map[string]int

	// held is the storage Writes and their effects are in, for Release.
	held *held
}

// held is the storage an outcome holds until it is released.
type held struct {
	d        *Dispatcher
	mu       sync.Mutex
	released bool
	writes   []apply.Write
	stores   []*sdk.AnswerStore
}

// Release hands the storage of the outcome's Writes, and of the answers
// their effects were decoded from, back to the Dispatcher that made it, for
// a later batch: call it once nothing uses the outcome any more (its batch
// is applied). Writes and their effects are overwritten afterwards; strings
// stay as they are. Without Release, that storage is left to the GC.
// Calling it again, or on a copy, does nothing.
func (o Outcome) Release() {
	h := o.held
	if h == nil {
		return
	}
	d := h.d
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return
	}
	h.released = true
	for _, s := range h.stores {
		s.Reset()
		d.stores.put(s)
	}
	clear(h.writes) // drop the strings and effects for the GC
	d.writes.put(h.writes[:0])
	h.stores, h.writes = nil, nil
}

// Dispatch runs every target over the loaded orders meant for it that it
// has not yet applied. Every such (order, plugin) pair ends up as a write or
// a failure. err is only ctx ending.
func (d *Dispatcher) Dispatch(ctx context.Context, loaded []orders.Loaded) (Outcome, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	type answer struct {
		idx     []int // positions in loaded
		results []sdk.Result
		err     error
	}
	nt := len(d.targets)
	answers := make([]answer, nt)
	// names and markers are the targets' plugin names and done markers,
	// looked up once: a Local asks its plugin for its description.
	names, markers := make([]string, nt), make([]string, nt)
	for ti, t := range d.targets {
		names[ti] = t.Processor.Name()
		markers[ti] = keyspace.DoneField(names[ti])
	}
	sc, ok := d.scratch.get()
	if !ok {
		sc = &scratch{}
	}
	defer d.putScratch(sc)
	out := Outcome{Skipped: map[string]int{}, held: &held{d: d}}
	// batches are the distinct sets of orders sent, each packed at most
	// once however many targets get it: usually one, every loaded order.
	type sent struct {
		idx   []int
		batch client.Batch
	}
	batches := make([]sent, 0, nt)
	var wg sync.WaitGroup
	for ti, t := range d.targets {
		name := names[ti]
		idx := sc.ints(ti, len(loaded))
		for i := range loaded {
			l := &loaded[i] // not copied: a Loaded is some hundred bytes
			if !l.Ref.For(name, t.wants) {
				continue
			}
			if l.Done[name] {
				out.Skipped[name]++
				continue
			}
			idx = append(idx, i)
		}
		answers[ti].idx = idx
		if len(idx) == 0 {
			continue
		}
		var batch client.Batch
		found := false
		for _, b := range batches {
			if slices.Equal(b.idx, idx) {
				batch, found = b.batch, true
				break
			}
		}
		if !found {
			subset := sc.orders(len(batches), len(idx))
			for k, i := range idx {
				subset[k] = loaded[i].Order
			}
			batch = client.NewBatch(subset, d.packBuffer())
			batches = append(batches, sent{idx: idx, batch: batch})
		}
		var store *sdk.AnswerStore
		bp, isBatch := t.Processor.(BatchProcessor)
		if isBatch {
			store = d.answerStore()
			out.held.stores = append(out.held.stores, store)
		}
		wg.Add(1)
		go func(ti int, t Target) {
			defer wg.Done()
			if isBatch {
				answers[ti].results, answers[ti].err = bp.ProcessBatch(ctx, batch, store)
				return
			}
			answers[ti].results, answers[ti].err = t.Processor.Process(ctx, batch.Orders())
		}(ti, t)
	}
	wg.Wait()
	// Every call returned: nothing refers to the batches any more.
	for _, b := range batches {
		if buf := b.batch.Buffer(); cap(buf) > 0 {
			d.packBuffers.put(buf)
		}
	}
	if err := ctx.Err(); err != nil {
		out.Release()
		return Outcome{}, err
	}

	// written[i*nt+ti] is 1 + the index in target ti's results of its
	// write for loaded[i], or 0 when it has none.
	written := sc.zeros(len(loaded) * nt)
	writes := 0
	for ti, a := range answers {
		name := names[ti]
		for k, i := range a.idx {
			if a.err != nil {
				out.Failures = append(out.Failures, Failure{Index: i, Loaded: loaded[i], Plugin: name, Reason: a.err.Error(), Attempts: attempts(a.err)})
				continue
			}
			r := &a.results[k]
			if r.HostFailure != "" { // the plugin host already retried it
				out.Failures = append(out.Failures, Failure{Index: i, Loaded: loaded[i], Plugin: name, Reason: r.Err, Attempts: r.Attempts})
				continue
			}
			if r.Err != "" {
				out.Failures = append(out.Failures, Failure{Index: i, Loaded: loaded[i], Plugin: name, Reason: "plugin error: " + r.Err, Attempts: 1, Transient: !r.Permanent})
				continue
			}
			if err := d.targets[ti].Policy.CheckAll(r.Effects); err != nil {
				out.Failures = append(out.Failures, Failure{Index: i, Loaded: loaded[i], Plugin: name, Reason: "refused effect: " + err.Error(), Attempts: 1})
				continue
			}
			written[i*nt+ti] = int32(k + 1)
			writes++
		}
	}
	out.Writes, _ = d.writes.get()
	if cap(out.Writes) < writes {
		out.Writes = make([]apply.Write, 0, writes)
	}
	for i := range loaded {
		l := &loaded[i]
		key := ""
		for ti := range nt {
			k := written[i*nt+ti]
			if k == 0 {
				continue
			}
			if key == "" {
				key = l.Key // the loader's: no string per order here
			}
			if key == "" {
				key = d.keyOf(l.Order.ID)
			}
			out.Writes = append(out.Writes, apply.Write{
				OrderKey: key, Marker: markers[ti], Effects: answers[ti].results[k-1].Effects,
				Plugin: names[ti], OrderID: l.Order.ID, Channel: l.Order.Channel,
			})
		}
	}
	out.held.writes = out.Writes
	return out, nil
}

func attempts(err error) int {
	if errors.Is(err, pluginhost.ErrDisabled) {
		return 0 // refused without a try
	}
	return 1
}
