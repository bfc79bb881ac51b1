// Package bufpool sizes gRPC's message buffers for eventhost's batches.
//
// gRPC reads each message into one buffer, and marshals each into one, taken
// from a pool with size classes of 256 B, 4 KiB, 16 KiB, 32 KiB and 1 MiB. A
// batch's request or answer is usually 30–300 KiB, so every one took a 1 MiB
// buffer: whenever a garbage collection had emptied the pool, that was a
// fresh 1 MiB allocation per message, on both sides, which made the next
// collection come sooner. With a class at every power of two a buffer is
// at most twice its message.
//
// gRPC's pools also zero a buffer's whole capacity each time they hand it
// out, up to twice the message: measured, that was 7% of the CPU of a
// batch's round trip, host and plugin together. These buffers are not
// zeroed: gRPC writes every byte of a buffer's length (reading a message
// into it, marshalling into it, copying into it) before anything reads
// them, as its own transport's pool of frame buffers assumes too.
package bufpool

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// smallest and largest are the exponents of the smallest and largest size
// classes: 256 B and 16 MiB. Larger messages (up to sdk.MaxMessageBytes)
// are rare and get a buffer of their own size.
const smallest, largest = 8, 24

// pool is a mem.BufferPool with a size class at every power of two.
type pool struct {
	classes [largest - smallest + 1]sync.Pool // of *[]byte, capacity 1<<(smallest+i)
}

var _ mem.BufferPool = (*pool)(nil)

// New returns a buffer pool for one gRPC client or server.
func New() mem.BufferPool { return &pool{} }

// class is the exponent of the smallest class that holds n bytes.
func class(n int) int {
	if n <= 1<<smallest {
		return smallest
	}
	return bits.Len(uint(n - 1))
}

// Get returns a buffer of length n, its contents undefined.
func (p *pool) Get(n int) *[]byte {
	e := class(n)
	if e > largest {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[e-smallest].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<e)
	return &b
}

// Put takes back a buffer Get returned (or a prefix of it).
func (p *pool) Put(b *[]byte) {
	c := cap(*b)
	if c < 1<<smallest || c > 1<<largest || c&(c-1) != 0 {
		return // not one of the classes: a large buffer of its own size
	}
	p.classes[bits.Len(uint(c))-1-smallest].Put(b)
}
