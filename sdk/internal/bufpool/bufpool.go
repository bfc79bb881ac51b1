// Package bufpool sizes gRPC's message buffers for eventhost's batches.
//
// gRPC reads each message into one buffer, and marshals each into one, taken
// from a pool with size classes of 256 B, 4 KiB, 16 KiB, 32 KiB and 1 MiB. A
// batch's request or answer is usually 30–300 KiB, so every one took a 1 MiB
// buffer: whenever a garbage collection had emptied the pool, that was a
// fresh 1 MiB allocation per message, on both sides, which made the next
// collection come sooner. With a class at every power of two a buffer is
// at most twice its message.
package bufpool

import (
	"fmt"

	"google.golang.org/grpc/mem"
)

// smallest and largest are the exponents of the smallest and largest size
// classes: 256 B and 16 MiB. Larger messages (up to sdk.MaxMessageBytes)
// are rare and get a buffer of their own size.
const smallest, largest = 8, 24

// New returns a buffer pool for one gRPC client or server.
func New() mem.BufferPool {
	var exponents []uint8
	for e := uint8(smallest); e <= largest; e++ {
		exponents = append(exponents, e)
	}
	pool, err := mem.NewBinaryTieredBufferPool(exponents...)
	if err != nil {
		panic(fmt.Sprintf("bufpool: size classes 2^%d..2^%d: %v", smallest, largest, err)) // constants: cannot happen
	}
	return pool
}
