// Package intake is the bounded buffer between the sources that receive
// order ids and the pipeline that batches them.
package intake

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/eventhost/eventhost/host/orders"
)

// Queue holds received order refs, oldest first, up to a limit. It holds
// them compactly and without pointers: the ids' bytes in one buffer per
// chunk of refs, names (channels, stream keys) as small numbers, so that
// a full queue costs the garbage collector nothing to scan and under a
// third of the memory a channel of refs did (32 bytes a ref and its id's,
// against 160), and an empty one next to nothing. A ref that carries more
// than an id, its channel, its stream entry and when it was received (a
// retry, a poison stream entry, an id too long to be valid) is kept whole.
//
// Any number of goroutines may Offer and Put; one goroutine takes.
type Queue struct {
	limit int
	base  time.Time // Received is kept as the time since base

	mu         sync.Mutex
	n          int
	head, tail *chunk
	spare      *chunk
	names      []string // names[0] is ""
	closed     bool

	ready chan struct{} // holds a token while refs wait or once closed
	space chan struct{} // holds a token when a waiting Put may find room
	done  chan struct{} // closed by Close
}

// chunkRefs is how many refs one chunk holds: a 64k-ref queue is 64
// chunks, allocated as they fill and dropped as they drain.
const chunkRefs = 1024

// chunk is a run of refs: compact items, their ids' bytes in order, and
// the refs kept whole.
type chunk struct {
	items []item
	read  int // items[:read] are taken
	bytes []byte
	whole []orders.Ref
	next  *chunk
}

// item is one ref, without pointers.
type item struct {
	received int64  // Received - base, when hasReceived
	off      uint32 // the id's first byte in the chunk's bytes; the stream entry id follows it
	idLen    uint32
	sidLen   uint16
	channel  uint16 // in names
	stream   uint16 // in names
	flags    uint8
	whole    int32 // 1 + the ref's place in the chunk's whole refs; 0 for a compact one
}

const hasReceived = 1

// ErrClosed is Put's error once the queue is closed.
var ErrClosed = errors.New("intake closed")

// NewQueue returns an empty queue that holds at most limit refs (at least one).
func NewQueue(limit int) *Queue {
	return &Queue{
		limit: max(limit, 1), base: time.Now(), names: []string{""},
		ready: make(chan struct{}, 1), space: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// Cap is the most refs the queue holds.
func (q *Queue) Cap() int { return q.limit }

// Len is how many refs wait.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Offer adds r unless the queue is full or closed, and reports whether it
// did. It never waits.
func (q *Queue) Offer(r orders.Ref) bool {
	q.mu.Lock()
	if q.closed || q.n >= q.limit {
		q.mu.Unlock()
		return false
	}
	first := q.add(r)
	q.mu.Unlock()
	if first {
		signal(q.ready)
	}
	return true
}

// Put adds r, waiting while the queue is full. It returns ctx's error if
// ctx ends first, and ErrClosed once the queue is closed.
func (q *Queue) Put(ctx context.Context, r orders.Ref) error {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		if q.n < q.limit {
			first := q.add(r)
			room := q.n < q.limit
			q.mu.Unlock()
			if first {
				signal(q.ready)
			}
			if room {
				signal(q.space) // another Put may be waiting
			}
			return nil
		}
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-q.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close tells the taker that no more refs come: once it has taken those
// that wait, Take reports the queue closed. Offer and Put fail from now on.
// It is safe to call twice.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed = true
	close(q.done)
	signal(q.ready)
}

// Ready holds a token while refs may wait, or once the queue is closed:
// the taker waits on it, then calls Take. A token may be stale (Take then
// finds nothing).
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Take appends to batch the refs waiting, oldest first, until batch holds
// limit refs; it never waits. closed is true once the queue is closed and
// empty. The ids of the refs taken in one call share one string.
func (q *Queue) Take(batch []orders.Ref, limit int) (_ []orders.Ref, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	took := 0
	for len(batch) < limit && q.head != nil {
		c := q.head
		k := min(len(c.items)-c.read, limit-len(batch))
		batch = c.take(batch, k, q)
		took += k
		if c.read < len(c.items) {
			break // batch is full
		}
		if c != q.tail {
			q.head = c.next
			q.recycle(c)
			continue
		}
		c.reset() // the last chunk, drained: the next ref goes at its start
		break
	}
	q.n -= took
	if q.n > 0 || q.closed {
		signal(q.ready) // what is left waits for the next Take
	}
	if took > 0 {
		signal(q.space)
	}
	return batch, q.closed && q.n == 0
}

// add appends r; q.mu is held and the queue is not full. first is true
// when r is the only ref waiting: only then may Ready lack a token (Take
// leaves one while refs are left behind, and the taker takes after each).
func (q *Queue) add(r orders.Ref) (first bool) {
	c := q.tail
	if c == nil || len(c.items) == chunkRefs {
		c = q.newChunk()
		if q.tail == nil {
			q.head = c
		} else {
			q.tail.next = c
		}
		q.tail = c
	}
	it, compact := q.compact(r)
	if compact {
		it.off = uint32(len(c.bytes))
		c.bytes = append(c.bytes, r.ID...)
		c.bytes = append(c.bytes, r.StreamID...)
	} else {
		c.whole = append(c.whole, r)
		it = item{whole: int32(len(c.whole))}
	}
	c.items = append(c.items, it)
	q.n++
	return q.n == 1
}

// compactIDBytes is the longest id kept compact: limits.max_id_bytes is
// at most 1024, and a longer id, which the loader refuses, is kept as the
// source read it rather than copied (a producer may publish ids of
// megabytes).
const compactIDBytes = 1024

// compact returns r as an item, but for its bytes' place, or false when r
// carries more than an item holds.
func (q *Queue) compact(r orders.Ref) (item, bool) {
	if r.Only != nil || r.Attempt != 0 || r.HashWaits != 0 || r.Replays != "" || r.Poison != "" ||
		(r.StreamID == "") != (r.Stream == "") || len(r.StreamID) > math.MaxUint16 || len(r.ID) > compactIDBytes {
		return item{}, false
	}
	channel, ok := q.name(r.Channel)
	if !ok {
		return item{}, false
	}
	stream, ok := q.name(r.Stream)
	if !ok {
		return item{}, false
	}
	it := item{idLen: uint32(len(r.ID)), sidLen: uint16(len(r.StreamID)), channel: channel, stream: stream}
	if !r.Received.IsZero() {
		it.received, it.flags = int64(r.Received.Sub(q.base)), hasReceived
	}
	return it, true
}

// name returns the number of name s, adding it. Names are the channels and
// stream keys configured, a handful: false past 1<<16 of them.
func (q *Queue) name(s string) (uint16, bool) {
	for i, n := range q.names {
		if n == s {
			return uint16(i), true
		}
	}
	if len(q.names) == 1<<16 {
		return 0, false
	}
	// A copy: s may be a piece of a larger string a source read.
	q.names = append(q.names, strings.Clone(s))
	return uint16(len(q.names) - 1), true
}

// take appends the chunk's next k refs to batch.
func (c *chunk) take(batch []orders.Ref, k int, q *Queue) []orders.Ref {
	items := c.items[c.read : c.read+k]
	c.read += k
	// The compact items' bytes are one run: one string for them all.
	lo, hi := -1, 0
	for _, it := range items {
		if it.whole == 0 {
			if lo < 0 {
				lo = int(it.off)
			}
			hi = int(it.off) + int(it.idLen) + int(it.sidLen)
		}
	}
	var text string
	if lo >= 0 {
		text = string(c.bytes[lo:hi])
	}
	for _, it := range items {
		if it.whole > 0 {
			batch = append(batch, c.whole[it.whole-1])
			c.whole[it.whole-1] = orders.Ref{}
			continue
		}
		id := int(it.off) - lo
		r := orders.Ref{ID: text[id : id+int(it.idLen)], Channel: q.names[it.channel]}
		if it.sidLen > 0 {
			sid := id + int(it.idLen)
			r.StreamID, r.Stream = text[sid:sid+int(it.sidLen)], q.names[it.stream]
		}
		if it.flags&hasReceived != 0 {
			// base has a monotonic reading, so Received has one too.
			r.Received = q.base.Add(time.Duration(it.received))
		}
		batch = append(batch, r)
	}
	return batch
}

// spareBytes bounds the id buffer a drained chunk keeps for reuse.
const spareBytes = 64 << 10

func (q *Queue) newChunk() *chunk {
	if c := q.spare; c != nil {
		q.spare = nil
		return c
	}
	return &chunk{items: make([]item, 0, chunkRefs), bytes: make([]byte, 0, 16*chunkRefs)}
}

// recycle keeps one drained chunk for the next to fill.
func (q *Queue) recycle(c *chunk) {
	c.reset()
	c.next = nil
	if q.spare == nil {
		q.spare = c
	}
}

func (c *chunk) reset() {
	c.items, c.read = c.items[:0], 0
	if cap(c.bytes) > spareBytes {
		c.bytes = make([]byte, 0, 16*chunkRefs)
	}
	c.bytes = c.bytes[:0]
	clear(c.whole)
	c.whole = c.whole[:0]
}

// signal leaves a token in ch unless one is there.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
