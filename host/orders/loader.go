package orders

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/rediserr"
)

// Loader reads order hashes.
type Loader struct {
	rdb    redis.UniversalClient
	prefix string
	// Limits bound the orders it loads; NewLoader sets DefaultLimits.
	Limits Limits
	// inOrder is true when a pipeline's replies are read one after the
	// other from one connection (one node, or the master Sentinel names):
	// a batch's replies are then read raw into one buffer. A cluster
	// client reads its nodes' replies at once, so it gets one map per
	// order, as go-redis builds them.
	inOrder bool
	// spare is the last Load's scratch, for the next. Not a sync.Pool:
	// that drops its contents at every collection, and a Put on one P is
	// not found by a Get on another, so the pipeline's batches, loaded
	// one at a time, kept growing new buffers.
	spareMu sync.Mutex
	spare   *loadScratch
}

// NewLoader returns a Loader for hashes named prefix+id, with the default
// limits.
func NewLoader(rdb redis.UniversalClient, prefix string) *Loader {
	_, inOrder := rdb.(*redis.Client)
	return &Loader{rdb: rdb, prefix: prefix, Limits: DefaultLimits(), inOrder: inOrder}
}

// Key is the hash key of order id.
func (l *Loader) Key(id string) string { return l.prefix + id }

// Load fetches refs in one pipeline. Orders that are missing, malformed or
// out of bounds come back in rejected with the reason; err is only for Redis
// failing, in which case nothing was loaded. An id CheckID refuses is
// rejected without being looked up.
func (l *Loader) Load(ctx context.Context, refs []Ref) (loaded []Loaded, rejected []Rejected, err error) {
	return l.LoadAppend(ctx, refs, nil)
}

// LoadAppend is Load appending the loaded orders to loaded, so that a
// caller loading batch after batch reuses one slice (it clears the slice
// once done with a batch: the orders hold the batch's strings). On an error
// loaded comes back as it was passed.
func (l *Loader) LoadAppend(ctx context.Context, refs []Ref, loaded []Loaded) (_ []Loaded, rejected []Rejected, err error) {
	s := l.getScratch()
	defer l.putScratch(s)
	keyBytes := 0
	for i, r := range refs {
		if err := l.Limits.CheckID(r.ID); err != nil {
			// A hash under an overlong id is not even marked: that would
			// send the whole id to Redis once more (Missing leaves the
			// dead letter without an order key).
			rejected = append(rejected, Rejected{Ref: r, Reason: err.Error(), Missing: len(r.ID) > l.Limits.MaxIDBytes || r.ID == ""})
			continue
		}
		s.look = append(s.look, i)
		keyBytes += len(l.prefix) + len(r.ID)
	}
	if len(s.look) == 0 {
		return loaded, rejected, nil
	}
	// The batch's keys are pieces of one string: one allocation, not one
	// per order.
	var all strings.Builder
	all.Grow(keyBytes)
	for _, i := range s.look {
		all.WriteString(l.prefix)
		all.WriteString(refs[i].ID)
	}
	keys, off := all.String(), 0
	for _, i := range s.look {
		n := len(l.prefix) + len(refs[i].ID)
		s.keys = append(s.keys, keys[off:off+n])
		off += n
	}
	if err := l.read(ctx, s); err != nil {
		return loaded, nil, fmt.Errorf("load %d orders: %w", len(s.keys), err)
	}
	loaded = slices.Grow(loaded, len(s.look))
	for j, i := range s.look {
		r, res := refs[i], s.results[j]
		if res.err != nil {
			// Only a key's own error gets here (WRONGTYPE: the key is not a hash).
			rejected = append(rejected, Rejected{Ref: r, Reason: fmt.Sprintf("order key %s: %v", s.keys[j], res.err)})
			continue
		}
		fields := s.fields[res.lo:res.hi]
		o, done, err := parse(r, s.keys[j], fields, l.Limits)
		if err != nil {
			none := !holdsOrder(fields)
			rejected = append(rejected, Rejected{Ref: r, Reason: err.Error(), Missing: none, NotStored: none})
			continue
		}
		loaded = append(loaded, Loaded{Order: o, Ref: r, Key: s.keys[j], Done: done})
	}
	return loaded, rejected, nil
}

// loadScratch is what one Load works in, kept for the next one: nothing in
// it outlives a Load but the batch's text, which is a string of its own.
type loadScratch struct {
	look    []int    // positions in refs of the ids looked up
	keys    []string // their keys
	results []result // their hashes, by position in keys
	fields  []field  // the hashes' fields: results index into it
	// Raw reading: the replies as Redis sent them, then their strings
	// without the framing, and where each string is in that text.
	replies replyBuffer
	text    []byte
	spans   []span
	args    []any
	raw     []*redis.RawWriteToCmd
	cmders  []redis.Cmder
}

// result is one hash read: its fields are fields[lo:hi], or err is the
// key's own error (WRONGTYPE).
type result struct {
	lo, hi int
	err    error
	raw    bool // lo and hi index spans, until the text is a string
}

// scratchKeep bounds the buffers kept for the next Load: a batch of huge
// orders should not pin its memory.
const scratchKeep = 4 << 20

func (l *Loader) getScratch() *loadScratch {
	l.spareMu.Lock()
	s := l.spare
	l.spare = nil
	l.spareMu.Unlock()
	if s == nil {
		s = &loadScratch{}
	}
	return s
}

func (l *Loader) putScratch(s *loadScratch) {
	if cap(s.replies.buf) > scratchKeep || cap(s.text) > scratchKeep {
		return
	}
	// Cleared: the pool must not hold the batch's strings and commands.
	clear(s.keys)
	clear(s.results)
	clear(s.fields)
	clear(s.args)
	clear(s.raw)
	clear(s.cmders)
	s.look, s.keys, s.results, s.fields = s.look[:0], s.keys[:0], s.results[:0], s.fields[:0]
	s.replies.buf, s.text, s.spans = s.replies.buf[:0], s.text[:0], s.spans[:0]
	s.args, s.raw, s.cmders = s.args[:0], s.raw[:0], s.cmders[:0]
	l.spareMu.Lock()
	l.spare = s
	l.spareMu.Unlock()
}

// read reads the hashes at s.keys into s.results and s.fields in one round
// trip (two when a reply is not a hash: that key is read again the usual
// way, which reports it as it always did). err is the round trip's.
func (l *Loader) read(ctx context.Context, s *loadScratch) error {
	s.results = slices.Grow(s.results[:0], len(s.keys))[:len(s.keys)]
	var again []int // positions in keys to read the usual way
	if l.inOrder {
		var err error
		if again, err = l.readRaw(ctx, s); err != nil {
			return err
		}
	} else {
		again = make([]int, len(s.keys))
		for j := range again {
			again[j] = j
		}
	}
	if len(again) == 0 {
		return nil
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(again))
	for k, j := range again {
		cmds[k] = pipe.HGetAll(ctx, s.keys[j])
	}
	if _, err := pipe.Exec(ctx); err != nil {
		if err := RoundTripError(cmds); err != nil {
			return err
		}
	}
	for k, j := range again {
		if err := cmds[k].Err(); err != nil {
			s.results[j] = result{err: err}
			continue
		}
		lo := len(s.fields)
		for name, value := range cmds[k].Val() {
			s.fields = append(s.fields, field{name, value})
		}
		s.results[j] = result{lo: lo, hi: len(s.fields)}
	}
	return nil
}

// readRaw sends one HGETALL per key and reads the replies as Redis sent
// them, one after the other into one buffer, then copies their strings
// into one string for the batch: two allocations for the batch, where
// go-redis' HGETALL makes a map and a string per field for each order. It
// returns the positions of the keys whose reply was not a hash.
func (l *Loader) readRaw(ctx context.Context, s *loadScratch) (again []int, err error) {
	s.args = slices.Grow(s.args[:0], 2*len(s.keys))[:2*len(s.keys)]
	for j := range s.keys {
		// A *string argument is not boxed: no allocation per key.
		s.args[2*j], s.args[2*j+1] = "hgetall", &s.keys[j]
		c := redis.NewRawWriteToCmd(ctx, &s.replies, s.args[2*j:2*j+2:2*j+2]...)
		s.raw = append(s.raw, c)
		s.cmders = append(s.cmders, c)
	}
	pipe := l.rdb.Pipeline()
	_ = pipe.BatchProcess(ctx, s.cmders...) // only queues
	if _, err := pipe.Exec(ctx); err != nil {
		if err := RoundTripError(s.raw); err != nil {
			return nil, err
		}
	}
	off := 0
	for j, c := range s.raw {
		n := int(c.Val())
		if n < 0 || n > len(s.replies.buf)-off {
			return nil, fmt.Errorf("read the reply for %s: %d bytes, past the %d read", s.keys[j], n, len(s.replies.buf))
		}
		lo := len(s.spans)
		var ok bool
		s.text, s.spans, ok = hashReply(s.replies.buf[off:off+n], s.text, s.spans)
		off += n
		if !ok {
			again = append(again, j)
			continue
		}
		s.results[j] = result{lo: lo, hi: len(s.spans), raw: true}
	}
	text := string(s.text)
	for j, res := range s.results {
		if !res.raw {
			continue
		}
		lo := len(s.fields)
		for k := res.lo; k < res.hi; k += 2 {
			name, value := s.spans[k], s.spans[k+1]
			s.fields = append(s.fields, field{text[name.off : name.off+name.n], text[value.off : value.off+value.n]})
		}
		s.results[j] = result{lo: lo, hi: len(s.fields)}
	}
	return again, nil
}

// replyBuffer collects raw replies. go-redis copies each string of a reply
// through ReadFrom, so that io.Copy needs no buffer of its own.
type replyBuffer struct{ buf []byte }

func (b *replyBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *replyBuffer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if len(b.buf) == cap(b.buf) {
			b.buf = slices.Grow(b.buf, 512)
		}
		n, err := r.Read(b.buf[len(b.buf):cap(b.buf)])
		b.buf = b.buf[:len(b.buf)+n]
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// RoundTripError returns the first error of a pipeline's commands that is
// the round trip's fault rather than its key's (see rediserr.Classify): nil
// means every failed command failed with a reply about its key (such as
// WRONGTYPE), so the keys are bad, not the round trip.
func RoundTripError[C redis.Cmder](cmds []C) error {
	for _, c := range cmds {
		if class, _ := rediserr.Classify(c.Err()); class != rediserr.Fine && class != rediserr.KeyFault {
			return c.Err()
		}
	}
	return nil
}
