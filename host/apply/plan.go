package apply

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/sdk"
)

// plan is one run of apply.lua: the live writes of a batch coalesced per
// key, and the checks that make the run land whole or not at all.
//
// Coalescing keeps each key's final state exactly what applying the writes
// one by one would leave, and only merges what commutes by the command's
// own semantics (never on a plugin's say-so): increments of one hash field,
// string or sorted-set member are summed (floats exactly, in decimal), set
// and HyperLogLog members united, HSETs of one field reduced to the last,
// BITFIELD increments of one counter summed under WRAP, merged in runs of
// one sign under SAT, kept one by one under FAIL or when counters overlap.
// XADD entries are kept, in order.
//
// Planning is the host's main cost per order, so a plan is built for
// reuse (reset): a key's fields, members and counters are chained through
// slabs all keys share, and a plan that is reset keeps its memory.
type plan struct {
	writes []Write // the batch's writes, which the indexes below name
	// keys are the script's KEYS: the dead-letter stream, emptyKey, the
	// streams to acknowledge entries on, the order hashes in order, then
	// the keys effects write (and, appended by encode, order hashes of
	// dead letters).
	keys []string
	own  []int // eventhost's own streams among keys
	acks []int // the streams to acknowledge on, in keys
	// names finds what a name is to the plan (a key, an order hash, a
	// written key) in one map lookup, the one lookup per effect.
	names map[string]int32
	named []namedKey

	setNames []string       // the marker sets' names, set after set
	sets     []span         // marker set s (1-based) is setNames[sets[s-1]]
	setIndex map[string]int // sets by their names joined, once there are many
	idBuf    []byte
	orders   []planOrder

	accs []*keyAcc // grouped by class (layOut)
	// checked lists, per 1-based field number of the check section, the
	// key and field the script reports a value problem against.
	checked []fieldRef

	// What the keys hold, chained per key (keyAcc's chains).
	// accSlabs hold the keyAccs, slab after slab, each twice as large as
	// the one before up to maxAccSlab (a plan of a few keys, a hash
	// slot's share on a cluster, stays small); *keyAcc stays valid.
	accSlabs  [][]keyAcc
	accSlab   int // the slab in use
	accInSlab int // keyAccs used in it
	fields    slab[field]
	steps     slab[step]
	members   slab[string]
	subs      slab[bitfieldSub]
	xadds     slab[[]string]
	accWrites slab[int]
	// Keys with many fields or members find them here instead of by a
	// scan of their chain.
	fieldIndex map[accName]int32
	memberSeen map[accName]struct{}

	// Scratch, kept for the next batch.
	effAcc     []*keyAcc
	effClass   []class
	ofWrite    []int
	planned    []int
	start      []int
	flat       []int
	grouped    []*keyAcc
	bitfield   bitfieldScratch
	args       args
	deadKeys   []int
	ackStreams []string // build's
}

type planOrder struct {
	name   string // the order hash
	named  int    // its entry in named
	key    int
	set    int
	writes []int
}

// namedKey is what one name is to the plan.
type namedKey struct {
	key   int     // 1-based position in keys; 0 until laid out
	order int     // 1-based order whose hash it is; 0 for none
	acc   *keyAcc // the effects on it; nil for none
}

type span struct{ from, to int }

// accName is a field or member of one key, for the plan-wide indexes.
type accName struct {
	acc  *keyAcc
	name string
}

// emptyKey is a key eventhost never writes (plugins may not: it is under
// the reserved prefix). The script checks the types of a batch's set and
// sorted-set keys with one SINTERCARD/ZINTERCARD that includes it: Redis
// checks every key's type first, and an empty key then ends the command at
// once. Should it exist after all, the check is slower, never wrong.
const emptyKey = orders.MarkerPrefix + "empty"

type fieldRef struct {
	acc   *keyAcc
	field string
}

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
	// Whether fields and members are found in fieldIndex and memberSeen
	// rather than by a scan.
	indexedFields, indexedMembers bool
	bitfield                      chain
	xadds                         chain
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

// class is the Redis type a key's effects need and the command family
// that writes it: keys written with two families in one batch would make
// one of them fail in Redis. layOut groups keys by class, in the order of
// the classes' type names, then family names, as they always were.
type class uint8

const (
	noClass       class = iota
	classHash           // hash: HINCRBY, HINCRBYFLOAT, HSET
	classSet            // set: SADD
	classStream         // stream: XADD
	classBitfield       // string: BITFIELD
	classIncrBy         // string: INCRBY
	classPFAdd          // string: PFADD
	classZSet           // zset: ZINCRBY
	nclasses
)

// classOf returns the class of the keys command writes, noClass for a
// command outside sdk's allowlist (policy refuses those before here).
func classOf(command string) class {
	switch command {
	case "HINCRBY", "HINCRBYFLOAT", "HSET":
		return classHash
	case "SADD":
		return classSet
	case "XADD":
		return classStream
	case "BITFIELD":
		return classBitfield
	case "INCRBY":
		return classIncrBy
	case "PFADD":
		return classPFAdd
	case "ZINCRBY":
		return classZSet
	}
	return noClass
}

// typ is the Redis type, as TYPE names it, of the class's keys.
func (c class) typ() string {
	switch c {
	case classHash:
		return "hash"
	case classSet:
		return "set"
	case classStream:
		return "stream"
	case classBitfield, classIncrBy, classPFAdd:
		return "string"
	case classZSet:
		return "zset"
	}
	return ""
}

// typArg is typ as a script argument (a constant: boxed without
// allocating).
func (c class) typArg() any {
	switch c {
	case classHash:
		return "hash"
	case classSet:
		return "set"
	case classStream:
		return "stream"
	case classBitfield, classIncrBy, classPFAdd:
		return "string"
	case classZSet:
		return "zset"
	}
	return ""
}

// family names the command family, for messages.
func (c class) family() string {
	switch c {
	case classBitfield:
		return "BITFIELD"
	case classIncrBy:
		return "INCRBY"
	case classPFAdd:
		return "PFADD"
	}
	return c.typ()
}

// perField says whether writes to the key's fields can be refused field by
// field (writesOf).
func (c class) perField() bool { return c == classHash || c == classZSet }

// newPlan plans the writes listed in live (indexes into writes), for a
// run that dead-letters to dlStream and acknowledges on ackStreams.
// refused gets, per write that cannot be part of the batch, the reason: a
// key written with two types or families within the batch. The plan is
// one a's earlier batches used: give it back with releasePlan.
func (a *Applier) newPlan(writes []Write, live []int, dlStream string, ackStreams []string, refused map[int]leftOut) *plan {
	p, _ := a.plans.Get().(*plan)
	if p == nil {
		p = &plan{}
	}
	p.build(writes, live, dlStream, ackStreams, refused)
	return p
}

// releasePlan gives p back for another batch. Neither p nor any command
// laid out from it may be used after: the script ran and its reply was
// read.
func (a *Applier) releasePlan(p *plan) {
	p.reset()
	a.plans.Put(p)
}

// reset empties p for build, keeping its memory; it also drops p's
// references to the last batch.
func (p *plan) reset() {
	p.writes = nil
	clear(p.keys)
	p.keys, p.own, p.acks = p.keys[:0], p.own[:0], p.acks[:0]
	clear(p.names)
	clear(p.named)
	p.named = p.named[:0]
	clear(p.setNames)
	p.setNames, p.sets = p.setNames[:0], p.sets[:0]
	clear(p.setIndex)
	clear(p.orders)
	p.orders = p.orders[:0]
	clear(p.accs)
	clear(p.checked)
	p.accs, p.checked = p.accs[:0], p.checked[:0]
	for i := range p.accSlabs[:min(p.accSlab+1, len(p.accSlabs))] {
		clear(p.accSlabs[i])
	}
	p.accSlab, p.accInSlab = 0, 0
	p.ackStreams = nil
	p.fields.reset()
	p.steps.reset()
	p.members.reset()
	p.subs.reset()
	p.xadds.reset()
	p.accWrites.reset()
	clear(p.fieldIndex)
	clear(p.memberSeen)
	clear(p.effAcc)
	clear(p.grouped)
	p.bitfield.reset()
	p.args.reset()
}

// build plans the writes listed in live into p, which is empty (new or
// reset): see newPlan.
func (p *plan) build(writes []Write, live []int, dlStream string, ackStreams []string, refused map[int]leftOut) {
	p.writes, p.ackStreams = writes, ackStreams
	if p.names == nil {
		p.names = make(map[string]int32, 4*len(live))
	}
	p.keys = append(p.keys, dlStream, emptyKey)
	p.named[p.name(dlStream)].key = 1
	p.named[p.name(emptyKey)].key = 2
	p.own = append(p.own, 1)
	for _, st := range ackStreams {
		k := p.key(st)
		if k != 1 {
			p.own = append(p.own, k)
		}
		p.acks = append(p.acks, k)
	}
	// Per-batch allocations, not per-order ones: each order's writes are
	// a window of one slice (filled below).
	p.ofWrite, p.planned = p.ofWrite[:0], p.planned[:0] // the order of each planned write
	for _, w := range live {
		wr := &writes[w]
		if reason := p.resolve(wr); reason != "" {
			refused[w] = leftOut{Refused, reason}
			continue
		}
		p.ofWrite = append(p.ofWrite, p.order(wr.OrderKey))
		p.planned = append(p.planned, w)
		for i := range wr.Effects {
			e := &wr.Effects[i]
			acc := p.effAcc[i]
			if acc == nil {
				acc = p.accFor(e.Key, p.effClass[i])
			}
			if acc.writes.n == 0 || acc.last != w {
				p.accWrites.push(&acc.writes, w)
				acc.last = w
			}
			p.add(acc, e)
		}
	}
	p.groupWrites()
	p.layOut()
	for i := range p.orders {
		p.orders[i].set = p.markerSet(p.orders[i].writes)
	}
}

// resolve finds the key of each of w's effects (p.effAcc, nil for a key
// new to the batch, and p.effClass), and says why w cannot join the batch
// so far, or "".
func (p *plan) resolve(w *Write) string {
	p.effAcc, p.effClass = p.effAcc[:0], p.effClass[:0]
	for i := range w.Effects {
		e := &w.Effects[i]
		c := classOf(e.Command)
		if c == noClass {
			return fmt.Sprintf("refused effect: command %s is not allowed", e.Command)
		}
		// A write has a handful of effects: scanning the earlier ones is
		// cheaper than a map per write on this per-order path.
		have, who := noClass, "this write"
		var acc *keyAcc
		for j := range w.Effects[:i] {
			if w.Effects[j].Key == e.Key {
				have, acc = p.effClass[j], p.effAcc[j]
				break
			}
		}
		if have == noClass {
			if n, ok := p.names[e.Key]; ok && p.named[n].acc != nil {
				acc = p.named[n].acc
				have, who = acc.class, "an earlier write in the batch"
			}
		}
		if have != noClass && have != c {
			return fmt.Sprintf("refused effect: %s %s conflicts with %s, which writes the key with %s", e.Command, e.Key, who, have.family())
		}
		p.effAcc = append(p.effAcc, acc)
		p.effClass = append(p.effClass, c)
	}
	return ""
}

// name returns the index in named of what name is to the plan, adding it
// as nothing yet.
func (p *plan) name(name string) int {
	if n, ok := p.names[name]; ok {
		return int(n)
	}
	p.names[name] = int32(len(p.named))
	p.named = append(p.named, namedKey{})
	return len(p.named) - 1
}

// order returns the index of the order whose hash is name, adding it if
// new. An order's writes mostly come one after the other: the last order
// is tried before the map.
func (p *plan) order(name string) int {
	if n := len(p.orders); n > 0 && p.orders[n-1].name == name {
		return n - 1
	}
	n := p.name(name)
	if p.named[n].order == 0 {
		p.orders = append(p.orders, planOrder{name: name, named: n})
		p.named[n].order = len(p.orders)
	}
	return p.named[n].order - 1
}

// accFor returns the effects on key, adding them if new.
func (p *plan) accFor(key string, c class) *keyAcc {
	n := p.name(key)
	nk := &p.named[n]
	if nk.acc == nil {
		if p.accSlab < len(p.accSlabs) && p.accInSlab == len(p.accSlabs[p.accSlab]) {
			p.accSlab, p.accInSlab = p.accSlab+1, 0
		}
		if p.accSlab == len(p.accSlabs) {
			p.accSlabs = append(p.accSlabs, make([]keyAcc, min(4<<p.accSlab, maxAccSlab)))
		}
		acc := &p.accSlabs[p.accSlab][p.accInSlab]
		p.accInSlab++
		*acc = keyAcc{key: key, named: n, class: c}
		nk.acc = acc
		p.accs = append(p.accs, acc)
	}
	return nk.acc
}

const maxAccSlab = 256

// groupWrites gives each order its planned writes: a counting sort by
// order, keeping batch order within each.
func (p *plan) groupWrites() {
	p.start = append(p.start[:0], make([]int, len(p.orders)+1)...)
	start := p.start
	for _, o := range p.ofWrite {
		start[o+1]++
	}
	for o := range p.orders {
		start[o+1] += start[o]
	}
	p.flat = append(p.flat[:0], p.planned...)
	// start[o] moves from the start of order o's writes to their end.
	for i, w := range p.planned {
		o := p.ofWrite[i]
		p.flat[start[o]] = w
		start[o]++
	}
	from := 0
	for o := range p.orders {
		p.orders[o].writes = p.flat[from:start[o]:start[o]]
		from = start[o]
	}
}

// markerSet returns the 1-based marker set of an order's writes, adding
// it if new. Orders of a batch mostly share one: the last one is tried
// first, then the others, by a scan while they are few.
func (p *plan) markerSet(ws []int) int {
	if n := len(p.sets); n > 0 && p.sameMarkers(p.set(n), ws) {
		return n
	}
	if len(p.sets) <= manySets {
		for s := range p.sets {
			if p.sameMarkers(p.set(s+1), ws) {
				return s + 1
			}
		}
	}
	from := len(p.setNames)
	for _, w := range ws {
		p.setNames = append(p.setNames, p.writes[w].Marker)
	}
	if len(p.sets) > manySets {
		if s, ok := p.setIndex[string(p.markerID(p.setNames[from:]))]; ok {
			clear(p.setNames[from:])
			p.setNames = p.setNames[:from]
			return s
		}
	}
	p.sets = append(p.sets, span{from, len(p.setNames)})
	n := len(p.sets)
	switch {
	case n == manySets+1:
		if p.setIndex == nil {
			p.setIndex = map[string]int{}
		}
		for s := 1; s <= n; s++ {
			p.setIndex[string(p.markerID(p.set(s)))] = s
		}
	case n > manySets+1:
		p.setIndex[string(p.markerID(p.set(n)))] = n
	}
	return n
}

// manySets is how many marker sets a batch has before they are found by
// map rather than by a scan.
const manySets = 16

// markerID joins names into the plan's scratch.
func (p *plan) markerID(names []string) []byte {
	id := p.idBuf[:0]
	for i, name := range names {
		if i > 0 {
			id = append(id, 0)
		}
		id = append(id, name...)
	}
	p.idBuf = id
	return id
}

// set returns the names of marker set s (1-based).
func (p *plan) set(s int) []string {
	sp := p.sets[s-1]
	return p.setNames[sp.from:sp.to:sp.to]
}

func (p *plan) sameMarkers(names []string, ws []int) bool {
	if len(names) != len(ws) {
		return false
	}
	for i, w := range ws {
		if p.writes[w].Marker != names[i] {
			return false
		}
	}
	return true
}

// layOut gives the order hashes consecutive KEYS, so that the script
// finds them by position, then numbers the written keys. Keys are grouped
// by class (their relative order is free: commands on different keys
// commute), so that the script checks each type over a range of keys and
// runs each command over a run of them. It also numbers the fields the
// script checks.
func (p *plan) layOut() {
	for i := range p.orders {
		// Appended even if named before (it never is: the streams and
		// emptyKey are not order hashes), so that positions stay consecutive.
		o := &p.orders[i]
		p.keys = append(p.keys, o.name)
		if nk := &p.named[o.named]; nk.key == 0 {
			nk.key = len(p.keys)
		}
		o.key = len(p.keys)
	}
	// A stable counting sort by class.
	var count [nclasses + 1]int
	for _, acc := range p.accs {
		count[acc.class+1]++
	}
	for c := 1; c <= int(nclasses); c++ {
		count[c] += count[c-1]
	}
	p.grouped = append(p.grouped[:0], p.accs...)
	for _, acc := range p.grouped {
		p.accs[count[acc.class]] = acc
		count[acc.class]++
	}
	for _, acc := range p.accs {
		nk := &p.named[acc.named]
		if nk.key == 0 {
			p.keys = append(p.keys, acc.key)
			nk.key = len(p.keys)
		}
		acc.idx = nk.key
	}
	for _, acc := range p.accs {
		p.checkedFields(acc)
	}
}

// key returns the 1-based position of k in KEYS, adding it if new.
func (p *plan) key(k string) int {
	nk := &p.named[p.name(k)]
	if nk.key == 0 {
		p.keys = append(p.keys, k)
		nk.key = len(p.keys)
	}
	return nk.key
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

// writesOf returns the writes that change field ("" for a key of one
// value), in batch order. Only a value problem asks, so it is found then,
// from the writes' effects.
func (p *plan) writesOf(acc *keyAcc, field string) []int {
	var out []int
	for i := acc.writes.head; i != 0; i = p.accWrites.next[i-1] {
		w := p.accWrites.v[i-1]
		if !acc.class.perField() || p.changes(w, acc.key, field) {
			out = append(out, w)
		}
	}
	return out
}

// changes says whether write w changes field of key.
func (p *plan) changes(w int, key, field string) bool {
	for _, e := range p.writes[w].Effects {
		if e.Key != key {
			continue
		}
		switch e.Command {
		case "HINCRBY", "HINCRBYFLOAT":
			if e.Args[0] == field {
				return true
			}
		case "HSET":
			for i := 0; i+1 < len(e.Args); i += 2 {
				if e.Args[i] == field {
					return true
				}
			}
		case "ZINCRBY":
			if e.Args[1] == field {
				return true
			}
		}
	}
	return false
}

// writesOn returns the writes that touch acc's key.
func (p *plan) writesOn(acc *keyAcc) []int {
	out := make([]int, 0, acc.writes.n)
	for i := acc.writes.head; i != 0; i = p.accWrites.next[i-1] {
		out = append(out, p.accWrites.v[i-1])
	}
	return out
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
	if acc.indexedFields {
		if i, ok := p.fieldIndex[accName{acc, name}]; ok {
			return int(i)
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
	case acc.indexedFields:
		p.fieldIndex[accName{acc, name}] = int32(i)
	case acc.fields.n > manyFields:
		if p.fieldIndex == nil {
			p.fieldIndex = map[accName]int32{}
		}
		for j := acc.fields.head; j != 0; j = p.fields.next[j-1] {
			p.fieldIndex[accName{acc, p.fields.v[j-1].name}] = int32(j)
		}
		acc.indexedFields = true
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
	if acc.indexedMembers {
		if _, ok := p.memberSeen[accName{acc, m}]; ok {
			return
		}
		p.memberSeen[accName{acc, m}] = struct{}{}
	} else {
		for i := acc.members.head; i != 0; i = p.members.next[i-1] {
			if p.members.v[i-1] == m {
				return
			}
		}
		if acc.members.n >= manyMembers {
			if p.memberSeen == nil {
				p.memberSeen = map[accName]struct{}{}
			}
			for i := acc.members.head; i != 0; i = p.members.next[i-1] {
				p.memberSeen[accName{acc, p.members.v[i-1]}] = struct{}{}
			}
			p.memberSeen[accName{acc, m}] = struct{}{}
			acc.indexedMembers = true
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

// chunk is how many arguments one command of the script gets at most: Lua's
// unpack fails past about 8,000.
const chunk = 1000

// opWriter lays out the coalesced commands: as apply.lua reads them, runs
// of one command with one number of arguments, (command, argc, #ops,
// (key_idx, arg*)*)*; or, with perOp, as cluster.lua does, (command,
// key_idx, argc, arg*)*. The caller sets the count (runs or ops) at the
// place it reserved.
type opWriter struct {
	a     *args
	perOp bool
	n     int // runs, or ops with perOp
	// the current run
	cmd              any
	argc, count, cAt int
}

// op starts a command on the key at idx with argc arguments, which the
// caller appends next.
func (w *opWriter) op(cmd any, idx, argc int) {
	if w.perOp {
		w.a.boxed(cmd)
		w.a.int(idx)
		w.a.int(argc)
		w.n++
		return
	}
	if w.n == 0 || cmd != w.cmd || argc != w.argc {
		w.end()
		w.a.boxed(cmd)
		w.a.int(argc)
		w.cAt, w.count, w.cmd, w.argc = w.a.reserve(), 0, cmd, argc
		w.n++
	}
	w.a.int(idx)
	w.count++
}

// end closes the current run.
func (w *opWriter) end() {
	if !w.perOp && w.n > 0 {
		w.a.set(w.cAt, w.count)
	}
}

// chunker splits the arguments of one command that can take any number of
// them (SADD members, HSET pairs) into commands of at most chunk.
type chunker struct {
	w          *opWriter
	cmd        any
	idx        int
	left, room int
}

// next makes room for one more argument, which the caller appends.
func (c *chunker) next() {
	if c.room == 0 {
		c.room = min(c.left, chunk)
		c.w.op(c.cmd, c.idx, c.room)
	}
	c.room--
	c.left--
}

// writeOps lays out acc's coalesced commands.
func (p *plan) writeOps(acc *keyAcc, w *opWriter) {
	a := w.a
	switch acc.class {
	case classHash:
		// Fields set once go in HSETs of many pairs, after the others.
		pairs := 0
		for f := acc.fields.head; f != 0; f = p.fields.next[f-1] {
			fl := &p.fields.v[f-1]
			if p.onlySet(fl) {
				pairs++
				continue
			}
			for s := fl.steps.head; s != 0; s = p.steps.next[s-1] {
				st := &p.steps.v[s-1]
				switch st.kind {
				case stepSet:
					w.op("HSET", acc.idx, 2)
					a.str(&fl.name)
					a.str(&st.value)
				case stepInt:
					w.op("HINCRBY", acc.idx, 2)
					a.str(&fl.name)
					a.int64(st.n)
				case stepFloat:
					w.op("HINCRBYFLOAT", acc.idx, 2)
					a.str(&fl.name)
					a.decimal(&st.sum)
				}
			}
		}
		c := chunker{w: w, cmd: "HSET", idx: acc.idx, left: 2 * pairs}
		for f := acc.fields.head; f != 0 && c.left > 0; f = p.fields.next[f-1] {
			fl := &p.fields.v[f-1]
			if p.onlySet(fl) {
				c.next()
				a.str(&fl.name)
				c.next()
				a.str(&p.steps.v[fl.steps.head-1].value)
			}
		}
	case classIncrBy:
		if f := acc.fields.head; f != 0 {
			for s := p.fields.v[f-1].steps.head; s != 0; s = p.steps.next[s-1] {
				w.op("INCRBY", acc.idx, 1)
				a.int64(p.steps.v[s-1].n)
			}
		}
	case classZSet:
		for f := acc.fields.head; f != 0; f = p.fields.next[f-1] {
			fl := &p.fields.v[f-1]
			w.op("ZINCRBY", acc.idx, 2)
			a.decimal(&p.steps.v[fl.steps.head-1].sum)
			a.str(&fl.name)
		}
	case classSet, classPFAdd:
		var cmd any = "SADD"
		if acc.class == classPFAdd {
			cmd = "PFADD"
		}
		c := chunker{w: w, cmd: cmd, idx: acc.idx, left: acc.members.n}
		for m := acc.members.head; m != 0; m = p.members.next[m-1] {
			c.next()
			a.str(&p.members.v[m-1])
		}
	case classBitfield:
		p.writeBitfield(acc, w)
	case classStream:
		for x := acc.xadds.head; x != 0; x = p.xadds.next[x-1] {
			xs := p.xadds.v[x-1] // the effect's own arguments
			w.op("XADD", acc.idx, len(xs))
			for i := range xs {
				a.str(&xs[i])
			}
		}
	}
}

// onlySet says whether a hash field is written by HSETs only.
func (p *plan) onlySet(f *field) bool {
	return f.steps.n == 1 && p.steps.v[f.steps.head-1].kind == stepSet
}

// writeBitfield lays out acc's coalesced BITFIELD subcommands, as few
// commands of at most about chunk arguments as it takes, each starting in
// WRAP mode.
func (p *plan) writeBitfield(acc *keyAcc, w *opWriter) {
	subs := p.bitfield.coalesce(p.chainedSubs(acc))
	for from := 0; from < len(subs); {
		// Find this command's subcommands and argument count first.
		to, argc, mode := from, 0, "WRAP"
		for ; to < len(subs) && argc <= chunk-8; to++ {
			if subs[to].mode != mode {
				argc += 2
				mode = subs[to].mode
			}
			argc += 4
		}
		w.op("BITFIELD", acc.idx, argc)
		mode = "WRAP"
		for _, s := range subs[from:to] {
			// Strings from the subcommand as added: subs is scratch.
			src := &p.subs.v[s.at]
			if s.mode != mode {
				w.a.boxed("OVERFLOW")
				w.a.str(&src.mode)
				mode = s.mode
			}
			w.a.str(&src.op)
			w.a.str(&src.typ)
			w.a.int64(s.offset)
			w.a.int64(s.value)
		}
		from = to
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

// checkedFields numbers, on from p.checked, the fields of acc that the
// script checks (checks lays them out in the same order).
func (p *plan) checkedFields(acc *keyAcc) {
	switch acc.class {
	case classHash:
		for f := acc.fields.head; f != 0; f = p.fields.next[f-1] {
			if fl := &p.fields.v[f-1]; p.hasNonSet(fl) {
				p.checked = append(p.checked, fieldRef{acc: acc, field: fl.name})
			}
		}
	case classIncrBy, classPFAdd:
		p.checked = append(p.checked, fieldRef{acc: acc, field: ""})
	}
}

// hasNonSet says whether a hash field has a step the script checks.
func (p *plan) hasNonSet(f *field) bool {
	for s := f.steps.head; s != 0; s = p.steps.next[s-1] {
		if p.steps.v[s-1].kind != stepSet {
			return true
		}
	}
	return false
}

// checks lays out the script's check section: (key_idx, kind, #fields,
// (field, #steps, (step, value)*)*)* for the keys whose values the writes
// read. It returns how many keys it laid out.
func (p *plan) checks(a *args) int {
	n := 0
	for _, acc := range p.accs {
		var kind any
		nfields := 0
		switch acc.class {
		case classHash:
			kind = "h"
			for f := acc.fields.head; f != 0; f = p.fields.next[f-1] {
				if p.hasNonSet(&p.fields.v[f-1]) {
					nfields++
				}
			}
		case classIncrBy:
			kind, nfields = "s", 1
		case classPFAdd:
			kind, nfields = "p", 1
		}
		if nfields == 0 {
			continue
		}
		n++
		a.int(acc.idx)
		a.boxed(kind)
		a.int(nfields)
		if acc.class == classPFAdd {
			a.boxed("")
			a.int(0)
			continue
		}
		for f := acc.fields.head; f != 0; f = p.fields.next[f-1] {
			fl := &p.fields.v[f-1]
			if !p.hasNonSet(fl) {
				continue
			}
			a.str(&fl.name)
			a.int(fl.steps.n)
			for s := fl.steps.head; s != 0; s = p.steps.next[s-1] {
				st := &p.steps.v[s-1]
				switch st.kind {
				case stepSet:
					a.boxed("set")
					a.str(&st.value)
				case stepInt:
					a.boxed("int")
					a.int64(st.n)
				case stepFloat:
					a.boxed("float")
					a.decimal(&st.sum)
				}
			}
		}
	}
	return n
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
