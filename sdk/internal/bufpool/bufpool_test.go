package bufpool

import (
	"testing"

	"google.golang.org/grpc/mem"
)

// A message gets a buffer at most twice its size: gRPC's default pool gave
// a batch of 70 KiB a buffer of 1 MiB.
func TestBufferAtMostTwiceTheMessage(t *testing.T) {
	pool := New()
	for _, size := range []int{1, 300, 30 << 10, 70 << 10, 300 << 10, 3 << 20, 20 << 20} {
		buf := pool.Get(size)
		if len(*buf) != size || cap(*buf) > max(2*size, 1<<smallest) {
			t.Errorf("Get(%d): len %d, cap %d", size, len(*buf), cap(*buf))
		}
		pool.Put(buf)
	}
	if buf := mem.DefaultBufferPool().Get(70 << 10); cap(*buf) <= 2*(70<<10) {
		t.Logf("gRPC's default pool now sizes a 70 KiB buffer at %d: this package may no longer be needed", cap(*buf))
	}
}

// A buffer comes back from the pool for a message of its class, with the
// length asked for; buffers outside the classes are not pooled.
func TestBuffersAreReused(t *testing.T) {
	pool := New()
	buf := pool.Get(3000)
	first := &(*buf)[:1][0]
	pool.Put(buf)
	again := pool.Get(2500)
	if len(*again) != 2500 || cap(*again) != 4096 {
		t.Errorf("Get(2500): len %d, cap %d", len(*again), cap(*again))
	}
	if &(*again)[:1][0] != first {
		t.Log("the pool dropped the buffer (a collection, or the race detector): nothing to check")
	}
	huge := pool.Get(40 << 20)
	if len(*huge) != 40<<20 {
		t.Errorf("Get(40 MiB): len %d", len(*huge))
	}
	pool.Put(huge) // not a class: dropped, not kept
}
