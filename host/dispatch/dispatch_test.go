package dispatch_test

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/dispatch"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/client"
)

// gated is a plugin that writes SADD <name> <id> for each order, and holds
// each batch until release is closed, once started is closed.
type gated struct {
	name    string
	started chan struct{}
	release chan struct{}
}

func (g *gated) Name() string { return g.name }

func (g *gated) Process(_ context.Context, os []sdk.Order) ([]sdk.Result, error) {
	if g.started != nil {
		close(g.started)
		<-g.release
	}
	out := make([]sdk.Result, len(os))
	for i, o := range os {
		out[i] = sdk.Result{Effects: []sdk.Effect{{Command: "SADD", Key: g.name, Args: []string{o.ID}}}}
	}
	return out, nil
}

func target(p dispatch.Processor) dispatch.Target {
	return dispatch.Target{Processor: p, Channels: []string{"c"}, Policy: policy.New(p.Name(), []string{p.Name()}, nil)}
}

func plugins(out dispatch.Outcome) []string {
	var names []string
	for _, w := range out.Writes {
		names = append(names, w.Plugin)
	}
	return names
}

// TestSetTargetsBetweenBatches: a swap waits for the batch in flight, which
// finishes on the old targets; the next batch goes to the new ones only.
func TestSetTargetsBetweenBatches(t *testing.T) {
	old := &gated{name: "old", started: make(chan struct{}), release: make(chan struct{})}
	d := dispatch.New([]dispatch.Target{target(old)}, func(id string) string { return "order:" + id })
	batch := []orders.Loaded{{Order: sdk.Order{ID: "1", Channel: "c"}, Ref: orders.Ref{ID: "1", Channel: "c"}}}

	first := make(chan dispatch.Outcome)
	go func() {
		out, err := d.Dispatch(context.Background(), batch)
		if err != nil {
			t.Error(err)
		}
		first <- out
	}()
	<-old.started
	swapped := make(chan struct{})
	go func() {
		d.SetTargets([]dispatch.Target{target(&gated{name: "new"})})
		close(swapped)
	}()
	select {
	case <-swapped:
		t.Fatal("SetTargets returned while a batch was in flight on the old targets")
	case <-time.After(50 * time.Millisecond):
	}
	close(old.release)
	if got := plugins(<-first); len(got) != 1 || got[0] != "old" {
		t.Errorf("batch in flight wrote for %q, want [old]", got)
	}
	<-swapped
	out, err := d.Dispatch(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if got := plugins(out); len(got) != 1 || got[0] != "new" {
		t.Errorf("batch after the swap wrote for %q, want [new]", got)
	}
	if got := d.Targets(); len(got) != 1 || got[0].Processor.Name() != "new" {
		t.Errorf("Targets after the swap = %v", got)
	}
}

// picky writes SADD <name> <id> for each order, fails the orders named in
// fail (transiently), and records the batches it was sent.
type picky struct {
	name    string
	fail    map[string]bool
	batches [][]string
}

func (p *picky) Name() string { return p.name }

func (p *picky) Process(_ context.Context, os []sdk.Order) ([]sdk.Result, error) {
	var ids []string
	out := make([]sdk.Result, len(os))
	for i, o := range os {
		ids = append(ids, o.ID)
		if p.fail[o.ID] {
			out[i] = sdk.Result{Err: "no " + o.ID}
			continue
		}
		out[i] = sdk.Result{Effects: []sdk.Effect{{Command: "SADD", Key: p.name, Args: []string{o.ID}}}}
	}
	p.batches = append(p.batches, ids)
	return out, nil
}

// TestDispatchOutcome: each target gets the orders meant for it that it
// has not applied; writes come order by order, then target by target (the
// order each key sees them in), each naming the order's hash and the
// plugin's marker; failures and skips are reported per plugin.
func TestDispatchOutcome(t *testing.T) {
	a := &picky{name: "a", fail: map[string]bool{"2": true}}
	b := &picky{name: "b"}
	c := &picky{name: "c"} // listens on another channel
	targets := []dispatch.Target{target(a), target(b), {Processor: c, Channels: []string{"other"}, Policy: policy.New("c", []string{"c"}, nil)}}
	d := dispatch.New(targets, func(id string) string { return "order:" + id })
	load := func(id, channel string, done ...string) orders.Loaded {
		l := orders.Loaded{Order: sdk.Order{ID: id, Channel: channel}, Ref: orders.Ref{ID: id, Channel: channel}, Done: map[string]bool{}}
		for _, p := range done {
			l.Done[p] = true
		}
		return l
	}
	only := load("4", "c")
	only.Ref.Only = []string{"b"}
	batch := []orders.Loaded{load("1", "c"), load("2", "c"), load("3", "c", "b"), only, load("5", "other")}
	out, err := d.Dispatch(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	var writes []string
	for _, w := range out.Writes {
		if w.OrderKey != "order:"+w.OrderID || w.Marker != keyspace.DoneField(w.Plugin) || w.Effects[0].Key != w.Plugin || w.Effects[0].Args[0] != w.OrderID {
			t.Errorf("write %+v does not match its order and plugin", w)
		}
		writes = append(writes, w.OrderID+w.Plugin)
	}
	if want := []string{"1a", "1b", "2b", "3a", "4b", "5c"}; !reflect.DeepEqual(writes, want) {
		t.Errorf("writes %q, want %q", writes, want)
	}
	if len(out.Failures) != 1 || out.Failures[0].Plugin != "a" || out.Failures[0].Index != 1 || !out.Failures[0].Transient || out.Failures[0].Reason != "plugin error: no 2" {
		t.Errorf("failures %+v, want order 2 on a, transient", out.Failures)
	}
	if !reflect.DeepEqual(out.Skipped, map[string]int{"b": 1}) {
		t.Errorf("skipped %v, want b: 1", out.Skipped)
	}
	sent := [][][]string{a.batches, b.batches, c.batches}
	if want := [][][]string{{{"1", "2", "3"}}, {{"1", "2", "4"}}, {{"5"}}}; !reflect.DeepEqual(sent, want) {
		t.Errorf("batches sent %q, want %q", sent, want)
	}
}

// batcher is a BatchProcessor writing SADD <name> <id> for each order,
// its answer decoded into the dispatcher's storage as a plugin's is.
type batcher struct {
	name   string
	sent   []*sdk.Order // the first order of each batch it was sent
	stores []*sdk.AnswerStore
}

func (p *batcher) Name() string { return p.name }

func (p *batcher) Process(ctx context.Context, os []sdk.Order) ([]sdk.Result, error) {
	return p.ProcessBatch(ctx, client.NewBatch(os, nil), nil)
}

func (p *batcher) ProcessBatch(_ context.Context, b client.Batch, store *sdk.AnswerStore) ([]sdk.Result, error) {
	os := b.Orders()
	p.sent = append(p.sent, &os[0])
	p.stores = append(p.stores, store)
	results := make([]sdk.Result, len(os))
	for i, o := range os {
		results[i] = sdk.Result{Effects: []sdk.Effect{{Command: "SADD", Key: p.name, Args: []string{o.ID}}}}
	}
	if store == nil {
		store = new(sdk.AnswerStore)
	}
	return store.ResultsFromProto(sdk.ResultsToProto(results, true), len(os)), nil
}

// Plugins that get the same orders are sent one batch (packed once), and
// the storage their answers were decoded into is reused only once the
// outcome is released: an outcome not released reads the same after later
// batches.
func TestDispatchSharesBatchesAndReusesReleasedStorage(t *testing.T) {
	a, b := &batcher{name: "a"}, &batcher{name: "b"}
	d := dispatch.New([]dispatch.Target{target(a), target(b)}, func(id string) string { return "order:" + id })
	load := func(ids ...string) []orders.Loaded {
		var batch []orders.Loaded
		for _, id := range ids {
			batch = append(batch, orders.Loaded{Order: sdk.Order{ID: id, Channel: "c"}, Ref: orders.Ref{ID: id, Channel: "c"}})
		}
		return batch
	}
	writes := func(out dispatch.Outcome) []string {
		var got []string
		for _, w := range out.Writes {
			got = append(got, w.Effects[0].Key+w.Effects[0].Args[0])
		}
		return got
	}
	first, err := d.Dispatch(context.Background(), load("1", "2"))
	if err != nil {
		t.Fatal(err)
	}
	if a.sent[0] != b.sent[0] {
		t.Error("two plugins that get the same orders were sent two batches")
	}
	second, err := d.Dispatch(context.Background(), load("3", "4", "5"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a1", "b1", "a2", "b2"}; !reflect.DeepEqual(writes(first), want) {
		t.Errorf("first outcome, not released, reads %q after a later batch, want %q", writes(first), want)
	}
	if a.stores[1] == a.stores[0] || a.stores[1] == b.stores[0] {
		t.Error("storage of an outcome not released was reused")
	}
	first.Release()
	first.Release() // a second time does nothing
	third, err := d.Dispatch(context.Background(), load("6"))
	if err != nil {
		t.Fatal(err)
	}
	if s := a.stores[2]; s != a.stores[0] && s != b.stores[0] {
		t.Error("storage of a released outcome was not reused")
	}
	if a.stores[2] == b.stores[2] {
		t.Error("two plugins were given one storage")
	}
	if want := []string{"a3", "b3", "a4", "b4", "a5", "b5"}; !reflect.DeepEqual(writes(second), want) {
		t.Errorf("second outcome reads %q, want %q", writes(second), want)
	}
	if want := []string{"a6", "b6"}; !reflect.DeepEqual(writes(third), want) {
		t.Errorf("third outcome reads %q, want %q", writes(third), want)
	}
}

// barrier is a plugin whose batch is held until every plugin sharing the
// barrier has started its own: a dispatch that called plugins one after
// the other would never end (the test's deadline ends it).
type barrier struct {
	name    string
	arrived *sync.WaitGroup
}

func (b barrier) Name() string { return b.name }

func (b barrier) Process(ctx context.Context, os []sdk.Order) ([]sdk.Result, error) {
	b.arrived.Done()
	all := make(chan struct{})
	go func() { b.arrived.Wait(); close(all) }()
	select {
	case <-all:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := make([]sdk.Result, len(os))
	for i, o := range os {
		out[i] = sdk.Result{Effects: []sdk.Effect{{Command: "SADD", Key: b.name, Args: []string{o.ID}}}}
	}
	return out, nil
}

// TestDispatchCallsPluginsTogether: every plugin of a batch is called at
// the same time, so a slow plugin delays the batch by its own time only;
// the writes keep the targets' order.
func TestDispatchCallsPluginsTogether(t *testing.T) {
	var arrived sync.WaitGroup
	names := []string{"a", "b", "c"}
	arrived.Add(len(names))
	var targets []dispatch.Target
	for _, n := range names {
		targets = append(targets, target(barrier{name: n, arrived: &arrived}))
	}
	d := dispatch.New(targets, func(id string) string { return "order:" + id })
	batch := []orders.Loaded{{Order: sdk.Order{ID: "1", Channel: "c"}, Ref: orders.Ref{ID: "1", Channel: "c"}}}
	// Generous: on a loaded machine goroutines can wait long to run.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := d.Dispatch(ctx, batch)
	if err != nil {
		t.Fatalf("dispatch: %v (were the plugins called one after the other?)", err)
	}
	if got := plugins(out); !reflect.DeepEqual(got, names) {
		t.Errorf("writes for %q, want %q", got, names)
	}
}
