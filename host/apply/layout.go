// Laying a plan out: the coalesced commands and the value checks, as
// apply.lua and cluster.lua read them.

package apply

// chunk is how many arguments one command of the script gets at most: Lua's
// unpack fails past about 8,000.
const chunk = 1000

// opWriter lays out the coalesced commands: as apply.lua reads them, runs
// of one command with one number of arguments on consecutive keys,
// (command, argc, #ops, first_key_idx, arg*)*, op j of a run writing
// KEYS[first_key_idx + j - 1]; or, with perOp, as cluster.lua does,
// (command, key_idx, argc, arg*)*. The caller sets the count (runs or ops)
// at the place it reserved.
//
// A run names its first key only: in a tutorial batch most commands are
// one SADD per order on a key of its own, laid out one after the other,
// and a key index per command cost the script a string and a number to
// parse per order.
type opWriter struct {
	a     *args
	perOp bool
	n     int // runs, or ops with perOp
	// the current run
	cmd                     any
	argc, count, cAt, first int
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
	if w.n == 0 || cmd != w.cmd || argc != w.argc || idx != w.first+w.count {
		w.end()
		w.a.boxed(cmd)
		w.a.int(argc)
		w.cAt, w.count, w.cmd, w.argc, w.first = w.a.reserve(), 0, cmd, argc, idx
		w.a.int(idx)
		w.n++
	}
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
