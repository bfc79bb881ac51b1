package dispatch

import (
	"sync"

	"github.com/eventhost/eventhost/sdk"
)

// The Dispatcher reuses what it allocates for a batch: what a dispatch uses
// only while it runs (scratch, packed batches) once it returns, and what an
// outcome holds (its Writes, the plugins' decoded answers) once the outcome
// is released.

// freeList keeps up to keep values for reuse. Unlike a sync.Pool's, its
// values survive garbage collections, which come every few batches.
type freeList[T any] struct {
	mu    sync.Mutex
	items []T
}

// keep bounds a free list: two batches' worth (one applied while the next
// is dispatched) for a few plugins, and more.
const keep = 32

func (f *freeList[T]) get() (v T, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.items)
	if n == 0 {
		return v, false
	}
	v = f.items[n-1]
	var zero T
	f.items[n-1] = zero // the list no longer holds it
	f.items = f.items[:n-1]
	return v, true
}

func (f *freeList[T]) put(v T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.items) < keep {
		f.items = append(f.items, v)
	}
}

// scratch is what a dispatch uses only while it runs, kept for the next.
type scratch struct {
	idx     [][]int // per target: positions in loaded of the orders it gets
	subsets [][]sdk.Order
	written []int32
}

// ints returns target ti's empty index slice, with room for n.
func (sc *scratch) ints(ti, n int) []int {
	for len(sc.idx) <= ti {
		sc.idx = append(sc.idx, nil)
	}
	if cap(sc.idx[ti]) < n {
		sc.idx[ti] = make([]int, 0, n)
	}
	return sc.idx[ti][:0]
}

// orders returns the j-th subset's slice of n orders.
func (sc *scratch) orders(j, n int) []sdk.Order {
	for len(sc.subsets) <= j {
		sc.subsets = append(sc.subsets, nil)
	}
	if cap(sc.subsets[j]) < n {
		sc.subsets[j] = make([]sdk.Order, n)
	}
	return sc.subsets[j][:n]
}

// zeros returns n zeros.
func (sc *scratch) zeros(n int) []int32 {
	if cap(sc.written) < n {
		sc.written = make([]int32, n)
	}
	sc.written = sc.written[:n]
	clear(sc.written)
	return sc.written
}

// putScratch keeps sc for a later dispatch, without the orders it held.
func (d *Dispatcher) putScratch(sc *scratch) {
	for _, s := range sc.subsets {
		clear(s[:cap(s)])
	}
	d.scratch.put(sc)
}

// packBuffer returns storage for a packed batch, from an earlier one when
// there is one.
func (d *Dispatcher) packBuffer() []byte {
	b, _ := d.packBuffers.get()
	return b
}

// answerStore returns storage for a plugin's answer, from an earlier
// outcome released when there is one.
func (d *Dispatcher) answerStore() *sdk.AnswerStore {
	if s, ok := d.stores.get(); ok {
		return s
	}
	return new(sdk.AnswerStore)
}
