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
