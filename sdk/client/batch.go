package client

import (
	"sync"

	"github.com/eventhost/eventhost/sdk"
)

// Batch is orders on their way to one or more plugins. Their packed
// encoding is made at most once, however many plugins get them (each from
// its own goroutine), and a run of them (Slice, as the host cuts a failed
// batch to find the order responsible) is sent as a window of it, not
// packed again.
type Batch struct {
	orders []sdk.Order
	// first is the index of orders[0] in the whole batch.
	first  int
	packed *packing
}

// packing is the packed encoding of a whole batch, shared by its slices.
type packing struct {
	once   sync.Once
	orders []sdk.Order
	// buf is the storage offered for data; data is buf once packed.
	buf, data []byte
	// ends[i] is where order i ends in data.
	ends []int
}

// NewBatch returns orders as a batch. buf, when not nil, is storage for the
// packed encoding to reuse (see Buffer); nothing is packed until a plugin
// that reads the packed encoding is sent the batch.
func NewBatch(orders []sdk.Order, buf []byte) Batch {
	return Batch{orders: orders, packed: &packing{orders: orders, buf: buf[:0]}}
}

// Orders returns the batch's orders. The slice must not be modified.
func (b Batch) Orders() []sdk.Order { return b.orders }

// Len is the number of orders in b.
func (b Batch) Len() int { return len(b.orders) }

// Slice returns orders lo to hi of b (as b.Orders()[lo:hi]), sharing b's
// packed encoding.
func (b Batch) Slice(lo, hi int) Batch {
	return Batch{orders: b.orders[lo:hi], first: b.first + lo, packed: b.packed}
}

// packedOrders returns b's orders packed, packing the whole batch the first
// time any part of it is asked for.
func (b Batch) packedOrders() []byte {
	p := b.packed
	p.once.Do(func() {
		p.data, p.ends = sdk.PackOrders(p.buf, p.orders, make([]int, 0, len(p.orders)))
	})
	from := 0
	if b.first > 0 {
		from = p.ends[b.first-1]
	}
	to := from
	if n := len(b.orders); n > 0 {
		to = p.ends[b.first+n-1]
	}
	return p.data[from:to:to]
}

// Buffer returns the storage of b's packed encoding, for a later batch to
// reuse (NewBatch), or nil when b has none. Call it only once every call
// sending b, or a slice of it, has returned: gRPC copies a request before
// its call returns, and keeps no reference to it.
func (b Batch) Buffer() []byte {
	p := b.packed
	if p.data != nil {
		return p.data[:0]
	}
	return p.buf
}
