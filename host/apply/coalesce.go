// Coalescing: what the effects on one key add up to (see plan).

package apply

import (
	"strconv"
	"strings"

	"github.com/eventhost/eventhost/sdk"
)

// keyAcc gathers the effects on one key.
type keyAcc struct {
	key   string
	named int // its entry in named
	idx   int
	class class
	// writes touching the key, in batch order; last is the latest.
	writes chain
	last   int
	fields chain // hash fields or zset members (INCRBY: ""), first-use order
	// members (SADD, PFADD), first-add order
	members chain
	// Once the key has many fields or members, they are found here
	// rather than by a scan of their chain; nil before.
	fieldIndex map[string]int
	memberSeen map[string]struct{}
	bitfield   chain
	xadds      chain
}

// field is a hash field, zset member or (named "") a string's value, and
// the steps that write it.
type field struct {
	name  string
	steps chain
}

// step is a run of one kind of write to one field: the script checks the
// field's current value against the steps in order.
type step struct {
	kind  stepKind
	value string // set
	n     int64  // int
	sum   decimalSum
}

type stepKind uint8

const (
	stepSet stepKind = iota
	stepInt
	stepFloat
)

type bitfieldSub struct {
	mode   string // WRAP, SAT or FAIL
	op     string // INCRBY or SET
	typ    string
	bits   int
	offset int64
	value  int64
	at     int // where in the plan's subs the subcommand was added
}

// add adds one effect to acc, whose key it writes.
func (p *plan) add(acc *keyAcc, e *sdk.Effect) {
	switch e.Command {
	case "HINCRBY":
		n, _ := strconv.ParseInt(e.Args[1], 10, 64)
		p.intStep(acc, e.Args[0], n)
	case "INCRBY":
		n, _ := strconv.ParseInt(e.Args[0], 10, 64)
		p.intStep(acc, "", n)
	case "HINCRBYFLOAT":
		_, s := p.lastStep(acc, e.Args[0], stepFloat)
		s.sum.add(e.Args[1])
	case "HSET":
		for i := 0; i+1 < len(e.Args); i += 2 {
			_, s := p.lastStep(acc, e.Args[i], stepSet)
			s.value = e.Args[i+1]
		}
	case "ZINCRBY":
		// A member's one step: float increments only, all summed.
		_, s := p.lastStep(acc, e.Args[1], stepFloat)
		s.sum.add(e.Args[0])
	case "SADD", "PFADD":
		for _, m := range e.Args {
			p.addMember(acc, m)
		}
	case "BITFIELD":
		p.addBitfield(acc, e.Args)
	case "XADD":
		p.xadds.push(&acc.xadds, e.Args)
	}
}

// manyFields and manyMembers are how many fields or members a key has
// before they are found by map rather than by a scan of its chain: most
// keys get a few a batch, and a map only pays past that.
const (
	manyFields  = 8
	manyMembers = 16
)

// fieldOf returns the index (1-based, in p.fields) of acc's field, adding
// it if new.
func (p *plan) fieldOf(acc *keyAcc, name string) int {
	if acc.fieldIndex != nil {
		if i, ok := acc.fieldIndex[name]; ok {
			return i
		}
	} else {
		for i := acc.fields.head; i != 0; i = p.fields.next[i-1] {
			if p.fields.v[i-1].name == name {
				return i
			}
		}
	}
	i := p.fields.push(&acc.fields, field{name: name})
	switch {
	case acc.fieldIndex != nil:
		acc.fieldIndex[name] = i
	case acc.fields.n > manyFields:
		acc.fieldIndex = p.fieldMaps.get()
		for j := acc.fields.head; j != 0; j = p.fields.next[j-1] {
			acc.fieldIndex[p.fields.v[j-1].name] = j
		}
	}
	return i
}

// lastStep returns field's last step if it is of kind, else a new one,
// and the field's index. The step is valid until the next step is added.
func (p *plan) lastStep(acc *keyAcc, name string, kind stepKind) (int, *step) {
	f := p.fieldOf(acc, name)
	if t := p.fields.v[f-1].steps.tail; t != 0 && p.steps.v[t-1].kind == kind {
		return f, &p.steps.v[t-1]
	}
	i := p.steps.push(&p.fields.v[f-1].steps, step{kind: kind})
	return f, &p.steps.v[i-1]
}

func (p *plan) intStep(acc *keyAcc, name string, n int64) {
	f, s := p.lastStep(acc, name, stepInt)
	sum := s.n + n
	if (n > 0 && sum < s.n) || (n < 0 && sum > s.n) {
		// The sum leaves int64: a new step, which the script's check
		// then reports as an overflow.
		p.steps.push(&p.fields.v[f-1].steps, step{kind: stepInt, n: n})
		return
	}
	s.n = sum
}

// addMember adds m to acc's members once.
func (p *plan) addMember(acc *keyAcc, m string) {
	if acc.memberSeen != nil {
		if _, ok := acc.memberSeen[m]; ok {
			return
		}
		acc.memberSeen[m] = struct{}{}
	} else {
		for i := acc.members.head; i != 0; i = p.members.next[i-1] {
			if p.members.v[i-1] == m {
				return
			}
		}
		if acc.members.n >= manyMembers {
			acc.memberSeen = p.memberMaps.get()
			for i := acc.members.head; i != 0; i = p.members.next[i-1] {
				acc.memberSeen[p.members.v[i-1]] = struct{}{}
			}
			acc.memberSeen[m] = struct{}{}
		}
	}
	p.members.push(&acc.members, m)
}

// addBitfield adds the subcommands policy allowed: [OVERFLOW m]
// (INCRBY|SET) type offset value, with #N offsets in counter widths.
func (p *plan) addBitfield(acc *keyAcc, args []string) {
	mode := "WRAP"
	for i := 0; i < len(args); {
		switch op := strings.ToUpper(args[i]); op {
		case "OVERFLOW":
			mode = strings.ToUpper(args[i+1])
			i += 2
		default:
			typ := args[i+1]
			bits, _ := strconv.Atoi(typ[1:])
			off := args[i+2]
			var offset int64
			if rest, ok := strings.CutPrefix(off, "#"); ok {
				n, _ := strconv.ParseInt(rest, 10, 64)
				offset = n * int64(bits)
			} else {
				offset, _ = strconv.ParseInt(off, 10, 64)
			}
			v, _ := strconv.ParseInt(args[i+3], 10, 64)
			at := len(p.subs.v)
			p.subs.push(&acc.bitfield, bitfieldSub{mode: mode, op: op, typ: typ, bits: bits, offset: offset, value: v, at: at})
			i += 4
		}
	}
}

// chainedSubs returns acc's BITFIELD subcommands as one slice (scratch).
func (p *plan) chainedSubs(acc *keyAcc) []bitfieldSub {
	in := p.bitfield.in[:0]
	for i := acc.bitfield.head; i != 0; i = p.subs.next[i-1] {
		in = append(in, p.subs.v[i-1])
	}
	p.bitfield.in = in
	return in
}

// bitfieldScratch is coalesce's memory, kept from key to key.
type bitfieldScratch struct {
	in, out  []bitfieldSub
	counters []bitfieldCounter
	of       []int // each subcommand's counter
	grouped  []bitfieldSub
}

type bitfieldCounter struct {
	typ    string
	offset int64
	bits   int
	mode   string
	n      int // subcommands
}

func (b *bitfieldScratch) reset() {
	clear(b.in)
	clear(b.out)
	clear(b.counters)
	clear(b.grouped)
}

// coalesce merges increments of one counter where the result is the same
// as applying them one by one: never across a SET, never when counters
// overlap or one counter sees two overflow modes. It returns subs itself,
// or a slice that the next call reuses.
func (b *bitfieldScratch) coalesce(subs []bitfieldSub) []bitfieldSub {
	// A key has a few dozen counters at most (a histogram's slots): a
	// linear search beats a map.
	b.counters, b.of = b.counters[:0], b.of[:0]
	for _, s := range subs {
		if s.op != "INCRBY" {
			return subs
		}
		c := -1
		for i := range b.counters {
			if b.counters[i].offset == s.offset && b.counters[i].typ == s.typ {
				c = i
				break
			}
		}
		if c < 0 {
			c = len(b.counters)
			b.counters = append(b.counters, bitfieldCounter{typ: s.typ, offset: s.offset, bits: s.bits, mode: s.mode})
		}
		if b.counters[c].mode != s.mode {
			return subs
		}
		b.counters[c].n++
		b.of = append(b.of, c)
	}
	// Overlapping counters carry into each other: keep the order as given.
	for i, x := range b.counters {
		for _, y := range b.counters[i+1:] {
			if x.offset < y.offset+int64(y.bits) && y.offset < x.offset+int64(x.bits) {
				return subs
			}
		}
	}
	// Group the subcommands by counter, in order within each (a counting
	// sort); n becomes each counter's end in grouped.
	end := 0
	for i := range b.counters {
		end += b.counters[i].n
		b.counters[i].n = end - b.counters[i].n // its start, for now
	}
	b.grouped = append(b.grouped[:0], subs...)
	for i, s := range subs {
		c := &b.counters[b.of[i]]
		b.grouped[c.n] = s
		c.n++
	}
	out := b.out[:0]
	from := 0
	for _, c := range b.counters {
		g := b.grouped[from:c.n]
		from = c.n
		switch c.mode {
		case "WRAP":
			// Wrapping is arithmetic modulo 2^bits, and uint64 wraps
			// modulo 2^64, a multiple: the sum's low bits are exact.
			var sum uint64
			for _, s := range g {
				sum += uint64(s.value)
			}
			v := int64(sum)
			if c.bits < 64 {
				v = int64(sum & (1<<c.bits - 1))
			}
			s := g[0]
			s.value = v
			out = append(out, s)
		case "SAT":
			// Saturation is monotone: a run of increments of one sign
			// saturates the same summed or one by one.
			cur := g[0]
			for _, s := range g[1:] {
				sum := cur.value + s.value
				sameSign := (cur.value >= 0) == (s.value >= 0)
				overflow := (s.value > 0 && sum < cur.value) || (s.value < 0 && sum > cur.value)
				if sameSign && !overflow {
					cur.value = sum
					continue
				}
				out = append(out, cur)
				cur = s
			}
			out = append(out, cur)
		default: // FAIL: each increment fails or lands on its own
			out = append(out, g...)
		}
	}
	b.out = out
	return out
}

// chain is a list threaded through one of the plan's slabs: items are
// 1-based, 0 ends the chain. The zero value is empty.
type chain struct {
	head, tail, n int
}

// slab holds the items of many chains. Pointers into v are valid until
// the next push.
type slab[T any] struct {
	v    []T
	next []int
}

// push appends x to c and returns its index.
func (s *slab[T]) push(c *chain, x T) int {
	s.v = append(s.v, x)
	s.next = append(s.next, 0)
	i := len(s.v)
	if c.tail == 0 {
		c.head = i
	} else {
		s.next[c.tail-1] = i
	}
	c.tail = i
	c.n++
	return i
}

func (s *slab[T]) reset() {
	clear(s.v)
	s.v, s.next = s.v[:0], s.next[:0]
}

// mapPool hands out maps for one batch's keys and takes them all back,
// emptied, with reset: a map keeps its memory from batch to batch.
type mapPool[V any] struct {
	maps []map[string]V
	used int
}

func (m *mapPool[V]) get() map[string]V {
	if m.used == len(m.maps) {
		m.maps = append(m.maps, map[string]V{})
	}
	m.used++
	return m.maps[m.used-1]
}

func (m *mapPool[V]) reset() {
	for _, x := range m.maps[:m.used] {
		clear(x)
	}
	m.used = 0
}
