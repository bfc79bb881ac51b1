package apply

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/policy"
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
type plan struct {
	// keys are the script's KEYS: the dead-letter stream, emptyKey, the
	// streams to acknowledge entries on, the order hashes in order, then
	// the keys effects write (and, appended by encode, order hashes of
	// dead letters).
	keys  []string
	index map[string]int // key → 1-based position in keys
	own   []int          // eventhost's own streams among keys
	acks  []int          // the streams to acknowledge on, in keys

	sets     [][]string
	setIndex map[string]int
	orders   []planOrder

	accs []*keyAcc // in first-use order
	// checked lists, per 1-based field number of the check section, the
	// key and field the script reports a value problem against.
	checked []fieldRef
}

type planOrder struct {
	name   string // the order hash
	key    int
	set    int
	writes []int
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
	key    string
	idx    int
	typ    string // the Redis type the commands need
	family string // the command family: string keys take one kind of write
	writes []int  // writes that touch the key
	// fieldWrites: writes per hash field or sorted-set member, for
	// refusing only those on a value problem (writesOf).
	fieldWrites map[string][]int

	fields []string          // hash fields or zset members, first-use order
	steps  map[string][]step // per field ("" for an INCRBY string)
	zsum   map[string]*decimalSum

	members []string // SADD, PFADD
	seen    map[string]struct{}

	bitfield []bitfieldSub
	xadds    [][]string
}

// step is a run of one kind of write to one field: the script checks the
// field's current value against the steps in order.
type step struct {
	kind  string // "set", "int" or "float"
	value string // set
	n     int64  // int
	sum   decimalSum
}

type bitfieldSub struct {
	mode   string // WRAP, SAT or FAIL
	op     string // INCRBY or SET
	typ    string
	bits   int
	offset int64
	value  int64
}

// family names the kind of write a key takes; keys written with two
// families in one batch would make one of them fail in Redis.
func family(cmd string) string {
	switch cmd {
	case "INCRBY", "BITFIELD", "PFADD":
		return cmd
	}
	return policy.KeyType(cmd)
}

// newPlan coalesces the writes listed in live (indexes into writes), for a
// run that dead-letters to dlStream and acknowledges on ackStreams. refused
// gets, per write that cannot be part of the batch, the reason: a key
// written with two types or families within the batch.
func newPlan(writes []Write, live []int, dlStream string, ackStreams []string, refused map[int]leftOut) *plan {
	p := &plan{keys: []string{dlStream, emptyKey}, index: map[string]int{dlStream: 1, emptyKey: 2}, setIndex: map[string]int{}, own: []int{1}}
	for _, st := range ackStreams {
		k := p.key(st)
		if k != 1 {
			p.own = append(p.own, k)
		}
		p.acks = append(p.acks, k)
	}
	accs := map[string]*keyAcc{}
	orderOf := map[string]int{}
	// Per-batch allocations, not per-order ones: each order's writes are
	// a window of one slice (filled below), and keys come from slabs.
	ofWrite := make([]int, 0, len(live)) // the order of each planned write
	planned := make([]int, 0, len(live))
	var slab []keyAcc
	for _, w := range live {
		wr := writes[w]
		if reason := p.conflict(wr, accs); reason != "" {
			refused[w] = leftOut{Refused, reason}
			continue
		}
		o, ok := orderOf[wr.OrderKey]
		if !ok {
			o = len(p.orders)
			orderOf[wr.OrderKey] = o
			p.orders = append(p.orders, planOrder{name: wr.OrderKey})
		}
		ofWrite = append(ofWrite, o)
		planned = append(planned, w)
		for _, e := range wr.Effects {
			acc := accs[e.Key]
			if acc == nil {
				if len(slab) == 0 {
					slab = make([]keyAcc, 64)
				}
				acc, slab = &slab[0], slab[1:]
				*acc = keyAcc{key: e.Key, typ: policy.KeyType(e.Command), family: family(e.Command)}
				accs[e.Key] = acc
				p.accs = append(p.accs, acc)
			}
			if n := len(acc.writes); n == 0 || acc.writes[n-1] != w {
				acc.writes = append(acc.writes, w)
			}
			acc.add(w, e)
		}
	}
	// Counting sort of the planned writes by order, keeping batch order
	// within each.
	start := make([]int, len(p.orders)+1)
	for _, o := range ofWrite {
		start[o+1]++
	}
	for o := range p.orders {
		start[o+1] += start[o]
	}
	flat := make([]int, len(planned))
	next := append([]int(nil), start[:len(p.orders)]...)
	for i, w := range planned {
		o := ofWrite[i]
		flat[next[o]] = w
		next[o]++
	}
	for o := range p.orders {
		p.orders[o].writes = flat[start[o]:start[o+1]:start[o+1]]
	}
	p.layOut()
	for i := range p.orders {
		p.orders[i].set = p.markerSet(writes, p.orders[i].writes)
	}
	return p
}

// markerSet returns the 1-based marker set of an order's writes, adding
// it if new. Orders of a batch mostly share one: the last one is tried
// before anything is allocated.
func (p *plan) markerSet(writes []Write, ws []int) int {
	if n := len(p.sets); n > 0 && sameMarkers(p.sets[n-1], writes, ws) {
		return n
	}
	names := make([]string, 0, len(ws))
	for _, w := range ws {
		names = append(names, writes[w].Marker)
	}
	id := strings.Join(names, "\x00")
	s, ok := p.setIndex[id]
	if !ok {
		s = len(p.sets) + 1
		p.setIndex[id] = s
		p.sets = append(p.sets, names)
	}
	return s
}

func sameMarkers(names []string, writes []Write, ws []int) bool {
	if len(names) != len(ws) {
		return false
	}
	for i, w := range ws {
		if writes[w].Marker != names[i] {
			return false
		}
	}
	return true
}

// layOut gives the order hashes consecutive KEYS, so that the script
// finds them by position, then numbers the written keys. Keys are grouped
// by type, then by the command family that writes them (their relative
// order is free: commands on different keys commute), so that the script
// checks each type over a range of keys and runs each command over a run
// of them.
func (p *plan) layOut() {
	for i := range p.orders {
		// Appended even if named before (it never is: the streams and
		// emptyKey are not order hashes), so that positions stay consecutive.
		name := p.orders[i].name
		p.keys = append(p.keys, name)
		if _, ok := p.index[name]; !ok {
			p.index[name] = len(p.keys)
		}
		p.orders[i].key = len(p.keys)
	}
	sort.SliceStable(p.accs, func(i, j int) bool {
		a, b := p.accs[i], p.accs[j]
		return a.typ < b.typ || a.typ == b.typ && a.family < b.family
	})
	for _, acc := range p.accs {
		acc.idx = p.key(acc.key)
	}
}

func (p *plan) key(k string) int {
	if i, ok := p.index[k]; ok {
		return i
	}
	p.keys = append(p.keys, k)
	p.index[k] = len(p.keys)
	return len(p.keys)
}

// conflict says why w cannot join the batch so far, or "".
func (p *plan) conflict(w Write, accs map[string]*keyAcc) string {
	for i, e := range w.Effects {
		f := family(e.Command)
		if f == "" {
			return fmt.Sprintf("refused effect: command %s is not allowed", e.Command)
		}
		// A write has a handful of effects: scanning the earlier ones is
		// cheaper than a map per write on this per-order path.
		have, who := "", "this write"
		for _, prev := range w.Effects[:i] {
			if prev.Key == e.Key {
				have = family(prev.Command)
				break
			}
		}
		if have == "" {
			if acc := accs[e.Key]; acc != nil {
				have, who = acc.family, "an earlier write in the batch"
			}
		}
		if have != "" && have != f {
			return fmt.Sprintf("refused effect: %s %s conflicts with %s, which writes the key with %s", e.Command, e.Key, who, have)
		}
	}
	return ""
}

func (a *keyAcc) add(w int, e sdk.Effect) {
	switch e.Command {
	case "HINCRBY":
		n, _ := strconv.ParseInt(e.Args[1], 10, 64)
		a.intStep(w, e.Args[0], n)
	case "INCRBY":
		n, _ := strconv.ParseInt(e.Args[0], 10, 64)
		a.intStep(w, "", n)
	case "HINCRBYFLOAT":
		s := a.lastStep(w, e.Args[0], "float")
		s.sum.add(e.Args[1])
	case "HSET":
		for i := 0; i+1 < len(e.Args); i += 2 {
			s := a.lastStep(w, e.Args[i], "set")
			s.value = e.Args[i+1]
		}
	case "ZINCRBY":
		member := e.Args[1]
		a.touch(w, member)
		if a.zsum == nil {
			a.zsum = map[string]*decimalSum{}
		}
		d := a.zsum[member]
		if d == nil {
			d = &decimalSum{}
			a.zsum[member] = d
			a.fields = append(a.fields, member)
		}
		d.add(e.Args[0])
	case "SADD", "PFADD":
		a.touch(w, "")
		for _, m := range e.Args {
			a.addMember(m)
		}
	case "BITFIELD":
		a.bitfield = appendBitfield(a.bitfield, e.Args)
	case "XADD":
		a.xadds = append(a.xadds, e.Args)
	}
}

// touch records that write w changes field. Keys of one value (sets,
// strings) need no record: every write of the key changes it.
func (a *keyAcc) touch(w int, field string) {
	if a.family != "hash" && a.family != "zset" {
		return
	}
	if a.fieldWrites == nil {
		a.fieldWrites = map[string][]int{}
	}
	ws := a.fieldWrites[field]
	if n := len(ws); n == 0 || ws[n-1] != w {
		a.fieldWrites[field] = append(ws, w)
	}
}

// writesOf returns the writes that change field ("" for a key of one
// value).
func (a *keyAcc) writesOf(field string) []int {
	if a.family != "hash" && a.family != "zset" {
		return a.writes
	}
	return a.fieldWrites[field]
}

// addMember adds m to the key's members once. Most keys get a few members
// a batch: a map only pays past that.
func (a *keyAcc) addMember(m string) {
	if a.seen != nil {
		if _, ok := a.seen[m]; ok {
			return
		}
		a.seen[m] = struct{}{}
	} else {
		for _, have := range a.members {
			if have == m {
				return
			}
		}
		if len(a.members) >= 16 {
			a.seen = make(map[string]struct{}, 2*len(a.members))
			for _, have := range a.members {
				a.seen[have] = struct{}{}
			}
			a.seen[m] = struct{}{}
		}
	}
	a.members = append(a.members, m)
}

// lastStep returns field's last step if it is of kind, else a new one.
func (a *keyAcc) lastStep(w int, field, kind string) *step {
	a.touch(w, field)
	if a.steps == nil {
		a.steps = map[string][]step{}
	}
	ss, ok := a.steps[field]
	if !ok {
		a.fields = append(a.fields, field)
	}
	if n := len(ss); n > 0 && ss[n-1].kind == kind {
		return &ss[n-1]
	}
	a.steps[field] = append(ss, step{kind: kind})
	ss = a.steps[field]
	return &ss[len(ss)-1]
}

func (a *keyAcc) intStep(w int, field string, n int64) {
	s := a.lastStep(w, field, "int")
	sum := s.n + n
	if (n > 0 && sum < s.n) || (n < 0 && sum > s.n) {
		// The sum leaves int64: a new step, which the script's check
		// then reports as an overflow.
		ss := a.steps[field]
		a.steps[field] = append(ss, step{kind: "int", n: n})
		return
	}
	s.n = sum
}

// appendBitfield appends the subcommands policy allowed to subs: [OVERFLOW
// m] (INCRBY|SET) type offset value, with #N offsets in counter widths.
func appendBitfield(subs []bitfieldSub, args []string) []bitfieldSub {
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
			subs = append(subs, bitfieldSub{mode: mode, op: op, typ: typ, bits: bits, offset: offset, value: v})
			i += 4
		}
	}
	return subs
}

// op is one command of the script's write phase.
type op struct {
	cmd  string
	key  int
	args []string
}

// chunk is how many arguments one command of the script gets at most: Lua's
// unpack fails past about 8,000.
const chunk = 1000

// ops returns the coalesced commands, key by key.
func (a *keyAcc) ops() []op {
	var out []op
	add := func(cmd string, args ...string) { out = append(out, op{cmd: cmd, key: a.idx, args: args}) }
	switch a.family {
	case "hash":
		var pairs []string
		for _, f := range a.fields {
			ss := a.steps[f]
			if len(ss) == 1 && ss[0].kind == "set" {
				pairs = append(pairs, f, ss[0].value)
				continue
			}
			for _, s := range ss {
				switch s.kind {
				case "set":
					add("HSET", f, s.value)
				case "int":
					add("HINCRBY", f, strconv.FormatInt(s.n, 10))
				case "float":
					add("HINCRBYFLOAT", f, s.sum.String())
				}
			}
		}
		for len(pairs) > 0 {
			n := min(len(pairs), chunk)
			add("HSET", pairs[:n]...)
			pairs = pairs[n:]
		}
	case "INCRBY":
		for _, s := range a.steps[""] {
			add("INCRBY", strconv.FormatInt(s.n, 10))
		}
	case "zset":
		for _, m := range a.fields {
			add("ZINCRBY", a.zsum[m].String(), m)
		}
	case "set", "PFADD":
		cmd := "SADD"
		if a.family == "PFADD" {
			cmd = "PFADD"
		}
		for m := a.members; len(m) > 0; {
			n := min(len(m), chunk)
			add(cmd, m[:n]...)
			m = m[n:]
		}
	case "BITFIELD":
		subs := coalesceBitfield(a.bitfield)
		var args []string
		mode := "WRAP"
		for _, s := range subs {
			if len(args) > chunk-8 {
				add("BITFIELD", args...)
				args, mode = nil, "WRAP"
			}
			if s.mode != mode {
				args = append(args, "OVERFLOW", s.mode)
				mode = s.mode
			}
			args = append(args, s.op, s.typ, strconv.FormatInt(s.offset, 10), strconv.FormatInt(s.value, 10))
		}
		if len(args) > 0 {
			add("BITFIELD", args...)
		}
	case "stream":
		for _, x := range a.xadds {
			add("XADD", x...)
		}
	}
	return out
}

// coalesceBitfield merges increments of one counter where the result is
// the same as applying them one by one: never across a SET, never when
// counters overlap or one counter sees two overflow modes.
func coalesceBitfield(subs []bitfieldSub) []bitfieldSub {
	type counter struct {
		typ    string
		offset int64
	}
	type group struct {
		bits  int
		mode  string
		subs  []bitfieldSub
		mixed bool
	}
	// A key has a few dozen counters at most (a histogram's slots): a
	// linear search beats a map.
	var order []counter
	var groups []*group
	find := func(c counter) *group {
		for i := range order {
			if order[i] == c {
				return groups[i]
			}
		}
		return nil
	}
	for _, s := range subs {
		if s.op != "INCRBY" {
			return subs
		}
		c := counter{s.typ, s.offset}
		g := find(c)
		if g == nil {
			g = &group{bits: s.bits, mode: s.mode}
			groups = append(groups, g)
			order = append(order, c)
		}
		if g.mode != s.mode {
			return subs
		}
		g.subs = append(g.subs, s)
	}
	// Overlapping counters carry into each other: keep the order as given.
	for i, a := range order {
		for j, b := range order[i+1:] {
			ga, gb := groups[i], groups[i+1+j]
			if a.offset < b.offset+int64(gb.bits) && b.offset < a.offset+int64(ga.bits) {
				return subs
			}
		}
	}
	out := make([]bitfieldSub, 0, len(order))
	for _, g := range groups {
		switch g.mode {
		case "WRAP":
			// Wrapping is arithmetic modulo 2^bits, and uint64 wraps
			// modulo 2^64, a multiple: the sum's low bits are exact.
			var sum uint64
			for _, s := range g.subs {
				sum += uint64(s.value)
			}
			v := int64(sum)
			if g.bits < 64 {
				v = int64(sum & (1<<g.bits - 1))
			}
			s := g.subs[0]
			s.value = v
			out = append(out, s)
		case "SAT":
			// Saturation is monotone: a run of increments of one sign
			// saturates the same summed or one by one.
			cur := g.subs[0]
			for _, s := range g.subs[1:] {
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
			out = append(out, g.subs...)
		}
	}
	return out
}

// checks returns the script's check section for a, numbering the checked
// fields on from p.checked.
func (p *plan) checks(a *keyAcc) []any {
	var kind string
	var fields []string
	switch a.family {
	case "hash":
		kind = "h"
		for _, f := range a.fields {
			for _, s := range a.steps[f] {
				if s.kind != "set" {
					fields = append(fields, f)
					break
				}
			}
		}
	case "INCRBY":
		kind, fields = "s", []string{""}
	case "PFADD":
		kind, fields = "p", []string{""}
	default:
		return nil
	}
	if len(fields) == 0 {
		return nil
	}
	out := []any{a.idx, kind, len(fields)}
	for _, f := range fields {
		p.checked = append(p.checked, fieldRef{acc: a, field: f})
		ss := a.steps[f]
		out = append(out, f, len(ss))
		for _, s := range ss {
			switch s.kind {
			case "set":
				out = append(out, "set", s.value)
			case "int":
				out = append(out, "int", strconv.FormatInt(s.n, 10))
			case "float":
				out = append(out, "float", s.sum.String())
			}
		}
	}
	return out
}
