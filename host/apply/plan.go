package apply

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/eventhost/eventhost/host/keyspace"
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
	// keys are the script's KEYS: the dead-letter stream,
	// keyspace.EmptyKey (for the type checks, see there), the streams to
	// acknowledge entries on, the order hashes in order, then the keys
	// effects write (and, appended by encode, order hashes of dead
	// letters).
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
	// The maps of keys with many fields or members (keyAcc).
	fieldMaps  mapPool[int]
	memberMaps mapPool[struct{}]

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

type fieldRef struct {
	acc   *keyAcc
	field string
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

// typeNames are the Redis types, as TYPE names them, of each class's keys;
// typeArgs the same boxed once, as script arguments that never allocate.
var (
	typeNames = [nclasses]string{
		classHash: "hash", classSet: "set", classStream: "stream", classZSet: "zset",
		classBitfield: "string", classIncrBy: "string", classPFAdd: "string",
	}
	typeArgs = func() (boxed [nclasses]any) {
		for c, name := range typeNames {
			boxed[c] = name
		}
		return boxed
	}()
)

// typ is the Redis type, as TYPE names it, of the class's keys.
func (c class) typ() string { return typeNames[c] }

// typArg is typ as a script argument.
func (c class) typArg() any { return typeArgs[c] }

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
	p.fieldMaps.reset()
	p.memberMaps.reset()
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
	p.keys = append(p.keys, dlStream, keyspace.EmptyKey)
	p.named[p.name(dlStream)].key = 1
	p.named[p.name(keyspace.EmptyKey)].key = 2
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
	p.refuseUnreadableScores(refused)
	p.groupWrites()
	p.layOut()
	for i := range p.orders {
		p.orders[i].set = p.markerSet(p.orders[i].writes)
	}
}

// refuseUnreadableScores refuses the writes to each sorted-set member
// whose summed increment Redis would refuse: ZINCRBY reads it as a double
// and refuses one past its range or one that underflows to 0, in the
// script's write phase, after the done markers and other effects.
func (p *plan) refuseUnreadableScores(refused map[int]leftOut) {
	for _, acc := range p.accs {
		if acc.class != classZSet {
			continue
		}
		for f := acc.fields.head; f != 0; f = p.fields.next[f-1] {
			fl := &p.fields.v[f-1]
			sum := &p.steps.v[fl.steps.head-1].sum
			if sum.big == nil {
				continue // at most 18 digits: a double Redis reads
			}
			s := sum.String()
			if v, _ := strconv.ParseFloat(s, 64); !math.IsInf(v, 0) && (v != 0 || s == "0") {
				continue
			}
			reason := fmt.Sprintf("refused effect: key %s member %s: the batch's increments sum to %.20s…, which Redis cannot read as a double", acc.key, fl.name, s)
			for _, w := range p.writesOf(acc, fl.name) {
				if _, ok := refused[w]; !ok {
					refused[w] = leftOut{Refused, reason}
				}
			}
		}
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

// setPlugins returns the plugins whose done markers names are (donePlugin).
func (p *plan) setPlugins(names []string) []string {
	plugins := make([]string, len(names))
	for i, n := range names {
		plugins[i] = donePlugin(n)
	}
	return plugins
}

// donePlugin returns the plugin whose done marker is marker: "" for a
// field that is not a done marker, which no list names (keyspace.DoneList).
func donePlugin(marker string) string {
	if plugin, ok := strings.CutPrefix(marker, keyspace.DonePrefix); ok {
		return plugin
	}
	return ""
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
		// keyspace.EmptyKey are not order hashes), so that positions stay
		// consecutive.
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
