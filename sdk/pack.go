package sdk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"unsafe"
)

// The compact encoding carries a batch's orders and each order's effects as
// one bytes field instead of nested protobuf messages. Decoding cuts every
// string out of that field's bytes, so a batch costs a handful of
// allocations instead of several per order and effect: that is most of what
// the plugin boundary costs the host.
//
// Values are length-prefixed (uvarint) byte strings; numbers are uvarints,
// signed ones zigzag-encoded (varint), and a float is its IEEE-754 bits.

var errTruncated = errors.New("truncated")

// Bounds on one order's answer, in either encoding. A plugin is not
// trusted: its answer must not make the host allocate without limit before
// any check runs. The host refuses effects with more arguments than
// MaxEffectArgs anyway (Redis' Lua cannot pass more to one command). A
// whole answer (every order of a batch) is bounded by MaxMessageBytes, the
// gRPC limit; an order whose answer alone exceeds it fails the call, and the
// host isolates that order.
const (
	MaxEffects    = 10000
	MaxEffectArgs = 1000
	// MaxArgBytes bounds one string of an effect: its command, key or any
	// argument. Redis itself refuses bulk strings over 512 MB.
	MaxArgBytes = 64 << 20
	// MaxAnswerBytes bounds the strings of one order's effects together.
	MaxAnswerBytes = MaxMessageBytes
	// MaxErrorBytes bounds the error text of one order's answer; longer
	// text is cut (it ends up in a dead letter and the log).
	MaxErrorBytes = 16 << 10
)

// packOrders encodes orders: for each, id, channel, ts, qty, cost, event,
// who, the number of extra fields, then each extra key and value.
func packOrders(orders []Order) []byte {
	b := make([]byte, 0, packedSize(orders))
	for _, o := range orders {
		b = appendOrder(b, o)
	}
	return b
}

// PackOrders appends orders to b in the packed encoding of a Process
// request's packed_orders (see docs/plugin-protocol.md), and to ends, for
// each order, the offset in b where it ends: the host packs a batch once for
// every plugin it goes to, and sends a run of its orders as a window of it.
// b grows once, if at all, as a rule. For the host side (sdk/client); plugins never need it.
func PackOrders(b []byte, orders []Order, ends []int) ([]byte, []int) {
	b = slices.Grow(b, packedSize(orders))
	for _, o := range orders {
		b = appendOrder(b, o)
		ends = append(ends, len(b))
	}
	return b, ends
}

// packedSize is about the length of orders packed: more, but for huge
// numbers and lengths.
func packedSize(orders []Order) int {
	n := 0
	for _, o := range orders {
		n += 40 + len(o.ID) + len(o.Channel) + len(o.Event) + len(o.Who)
		for k, v := range o.Extra {
			n += 10 + len(k) + len(v)
		}
	}
	return n
}

// appendOrder appends o to b in packOrders' encoding.
func appendOrder(b []byte, o Order) []byte {
	b = appendString(b, o.ID)
	b = appendString(b, o.Channel)
	b = binary.AppendVarint(b, o.TS)
	b = binary.AppendVarint(b, o.Qty)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(o.Cost))
	b = appendString(b, o.Event)
	b = appendString(b, o.Who)
	b = binary.AppendUvarint(b, uint64(len(o.Extra)))
	for k, v := range o.Extra {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	return b
}

// unpackOrders is the inverse of packOrders. The orders' strings share
// data's memory (see frozenString): data must never be modified again.
func unpackOrders(data []byte) ([]Order, error) {
	return appendOrders(nil, data)
}

// appendOrders is unpackOrders appending to out. A new slice is sized by
// counting the orders first; one reused from an earlier batch usually has
// room, and is grown by append in the rare batch that needs more.
func appendOrders(out []Order, data []byte) ([]Order, error) {
	d := decoder{s: frozenString(data)}
	if cap(out) == 0 {
		out = growOrders(out, countOrders(d.s))
	}
	for !d.done() {
		var o Order
		o.ID = d.str()
		o.Channel = d.str()
		o.TS = d.varint()
		o.Qty = d.varint()
		o.Cost = math.Float64frombits(d.fixed64())
		o.Event = d.str()
		o.Who = d.str()
		if n := d.uvarint(); n > 0 && d.err == nil {
			if n > uint64(len(d.s)) {
				return nil, fmt.Errorf("packed orders: order %d claims %d extra fields", len(out), n)
			}
			o.Extra = make(map[string]string, n)
			for range n {
				k := d.str()
				o.Extra[k] = d.str()
			}
		}
		if d.err != nil {
			return nil, fmt.Errorf("packed orders: order %d: %w", len(out), d.err)
		}
		out = append(out, o)
	}
	return out, nil
}

// growOrders returns orders with room for n more.
func growOrders(orders []Order, n int) []Order {
	if cap(orders)-len(orders) >= n {
		return orders
	}
	return append(make([]Order, 0, len(orders)+n), orders...)
}

// frozenString returns b's bytes as a string without copying them. Only for
// bytes that are never modified again, such as a bytes field that protobuf
// decoded (it copies the field out of gRPC's reused buffer into memory of
// its own): a string must never change under its reader. Strings cut from
// it keep all of b alive, as substrings of a copy kept the copy.
func frozenString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// countOrders returns how many well-formed orders the start of s holds, so
// that unpackOrders allocates its slice once.
func countOrders(s string) int {
	d := decoder{s: s}
	n := 0
	for !d.done() {
		d.str()
		d.str()
		d.uvarint()
		d.uvarint()
		d.fixed64()
		d.str()
		d.str()
		for extra := d.uvarint(); extra > 0 && d.err == nil; extra-- {
			d.str()
			d.str()
		}
		if d.err == nil {
			n++
		}
	}
	return n
}

// packEffects encodes effects: for each, the number of strings (command,
// key, then the arguments) and the strings.
func packEffects(effects []Effect) []byte {
	n := 0
	for _, e := range effects {
		n += 8 + len(e.Command) + len(e.Key)
		for _, a := range e.Args {
			n += 2 + len(a)
		}
	}
	return appendEffects(make([]byte, 0, n), effects)
}

// appendEffects appends effects to b in packEffects' encoding.
func appendEffects(b []byte, effects []Effect) []byte {
	for _, e := range effects {
		b = binary.AppendUvarint(b, uint64(2+len(e.Args)))
		b = appendString(b, e.Command)
		b = appendString(b, e.Key)
		for _, a := range e.Args {
			b = appendString(b, a)
		}
	}
	return b
}

// unpackEffects is the inverse of packEffects. All arguments share one
// slice, each effect's Args a window of it. The strings are cut from data
// (see frozenString), which must never be modified again.
func unpackEffects(data []byte) ([]Effect, error) {
	if len(data) > MaxAnswerBytes {
		return nil, fmt.Errorf("packed effects: %d bytes for one order, more than %d", len(data), MaxAnswerBytes)
	}
	// Sized for a typical plugin's few effects, to grow rarely.
	u := effectsUnpacker{effects: make([]Effect, 0, 4), args: make([]string, 0, 8)}
	return u.unpack(frozenString(data))
}

// effectsUnpacker decodes the effects of one or more orders into shared
// slices: all effects in one, all arguments in another, each order's
// effects and each effect's Args a window. A window is cut as soon as its
// part is decoded: growing a slice copies it to a new array but leaves the
// old one, which the windows cut before still see, as it was.
type effectsUnpacker struct {
	effects []Effect
	args    []string
}

// reserve makes room for effects more effects and args more arguments, so
// that decoding them allocates at most once each. A new slice replaces a
// full one rather than growing it: the windows cut from the old one keep
// it, and nothing needs to be copied.
func (u *effectsUnpacker) reserve(effects, args int) {
	if cap(u.effects)-len(u.effects) < effects {
		u.effects = make([]Effect, 0, max(effects, 2*cap(u.effects)))
	}
	if cap(u.args)-len(u.args) < args {
		u.args = make([]string, 0, max(args, 2*cap(u.args)))
	}
}

// AnswerStore is storage that plugins' answers are decoded into: results,
// effects and arguments each in one slice, each result's Effects and each
// effect's Args a window of them. A host that decodes batch after batch
// into one store, with Reset between, allocates none of these once the
// store has grown to fit. The zero value is ready to use.
//
// No string is stored in it: strings are cut from the answer's own bytes,
// which are never reused, so a string stays valid and unchanged for good.
type AnswerStore struct {
	results []Result
	u       effectsUnpacker
}

// Reset empties s for the next batch. Nothing may use the results decoded
// into s before any more: the next decode overwrites them.
func (s *AnswerStore) Reset() {
	// Cleared, so that the answers' bytes are not kept alive for the GC.
	clear(s.results)
	clear(s.u.effects)
	clear(s.u.args)
	s.results, s.u.effects, s.u.args = s.results[:0], s.u.effects[:0], s.u.args[:0]
}

// take returns n zero results from s's storage.
func (s *AnswerStore) take(n int) []Result {
	if cap(s.results)-len(s.results) < n {
		s.results = make([]Result, 0, max(n, 2*cap(s.results)))
	}
	from := len(s.results)
	s.results = s.results[:from+n]
	return s.results[from : from+n : from+n]
}

// unpack decodes one order's effects from s (packEffects' encoding),
// appending them to u.effects, and returns them. On an error u is as it was
// before the call: what the failed order appended is dropped, and nothing
// handed out before refers to it.
func (u *effectsUnpacker) unpack(s string) ([]Effect, error) {
	d := decoder{s: s}
	first, firstArg := len(u.effects), len(u.args)
	fail := func(err error) ([]Effect, error) {
		u.effects, u.args = u.effects[:first], u.args[:firstArg]
		return nil, err
	}
	for !d.done() {
		if len(u.effects)-first == MaxEffects {
			return fail(fmt.Errorf("packed effects: more than %d effects for one order", MaxEffects))
		}
		n := d.uvarint()
		if d.err == nil && (n < 2 || n > uint64(len(d.s)) || n-2 > MaxEffectArgs) {
			return fail(fmt.Errorf("packed effects: effect %d claims %d strings (command, key and at most %d arguments)", len(u.effects)-first, n, MaxEffectArgs))
		}
		e := Effect{Command: d.str(), Key: d.str()}
		from := len(u.args)
		for i := uint64(2); i < n && d.err == nil; i++ {
			u.args = append(u.args, d.str())
		}
		if d.err != nil {
			return fail(fmt.Errorf("packed effects: effect %d: %w", len(u.effects)-first, d.err))
		}
		if d.long > MaxArgBytes {
			return fail(fmt.Errorf("packed effects: effect %d holds a string of %d bytes, more than %d", len(u.effects)-first, d.long, MaxArgBytes))
		}
		if to := len(u.args); to > from {
			// Its capacity ends where it does: appending to one
			// effect's Args cannot overwrite the next one's.
			e.Args = u.args[from:to:to]
		}
		u.effects = append(u.effects, e)
	}
	return u.effects[first:len(u.effects):len(u.effects)], nil
}

// resultPermanent is the flag of a packed result whose error is permanent.
const resultPermanent = 1

// packResults runs p over orders, like ProcessBatch, and encodes a result
// per order, in order: each a uvarint length, then the result: uvarint
// flags (resultPermanent), the error text (length-prefixed, empty when
// none), and the effects in packEffects' encoding. The length prefix keeps
// a malformed result from costing more than its own order.
func packResults(p Plugin, orders []Order) []byte {
	var out Effects
	return appendResults(make([]byte, 0, 64*len(orders)), p, orders, &out)
}

// appendResults is packResults appending to b. Effects are encoded as soon
// as Handle returns, so out serves every order.
func appendResults(b []byte, p Plugin, orders []Order, out *Effects) []byte {
	for i := range orders {
		out.Reset()
		err := handleOne(p, orders[i], out)
		if err == nil {
			if err = checkBounds(out.List()); err != nil {
				err = Permanent(fmt.Errorf("answer for order %s: %v", orders[i].ID, err))
			}
		}
		if err != nil {
			flags := uint64(0)
			if errors.As(err, new(*PermanentError)) {
				flags = resultPermanent
			}
			text := err.Error()
			b = binary.AppendUvarint(b, uint64(uvarintLen(flags)+stringLen(text)))
			b = binary.AppendUvarint(b, flags)
			b = appendString(b, text)
			continue
		}
		// Sized first, so that the result is written where it goes
		// rather than copied there.
		effects := out.List()
		b = binary.AppendUvarint(b, uint64(2+effectsLen(effects)))
		b = append(b, 0, 0) // no flags, no error
		b = appendEffects(b, effects)
	}
	return b
}

// effectsLen is the length of effects in packEffects' encoding.
func effectsLen(effects []Effect) int {
	n := 0
	for _, e := range effects {
		n += uvarintLen(uint64(2+len(e.Args))) + stringLen(e.Command) + stringLen(e.Key)
		for _, a := range e.Args {
			n += stringLen(a)
		}
	}
	return n
}

// uvarintLen is the length of v as a uvarint.
func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// stringLen is the length of s as a length-prefixed string.
func stringLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

// unpackResults is the host's side of packResults for a batch of n orders,
// decoded into s. It returns n results, whatever data holds: a result that
// is malformed or over the bounds fails its order alone (permanently,
// "malformed answer: …"), a missing one fails its order, and more results
// than orders fail every order, since none can be trusted to be the answer
// for its order. Every string is cut from data (see frozenString), which
// must never be modified again; every result, effect and argument is held
// in s's slices.
func (s *AnswerStore) unpackResults(data []byte, n int) []Result {
	results := s.take(n)
	d := decoder{s: frozenString(data)}
	if cap(s.u.effects) == 0 {
		// New storage is sized by counting first; reused storage
		// usually has room, and grows by append when it has not.
		s.u.reserve(countEffects(d.s))
	}
	i := 0
	for ; !d.done(); i++ {
		size := d.uvarint()
		if d.err == nil && size > uint64(len(d.s)) {
			d.err = errTruncated
		}
		if d.err != nil {
			for ; i < n; i++ {
				results[i] = Result{Err: "malformed answer: packed results: " + d.err.Error(), Permanent: true}
			}
			break
		}
		if i == n {
			reason := fmt.Sprintf("malformed answer: the plugin answered more than the %d orders of its batch, so no answer in it can be matched to its order", n)
			for j := range results {
				results[j] = Result{Err: reason, Permanent: true}
			}
			return results
		}
		rec := d.s[:size]
		d.s = d.s[size:]
		results[i] = s.u.result(rec)
	}
	for ; i < n; i++ {
		results[i] = Result{Err: "plugin returned no result for this order", Permanent: true}
	}
	return results
}

// unpackResults is AnswerStore.unpackResults into a store of its own.
func unpackResults(data []byte, n int) []Result {
	var s AnswerStore
	return s.unpackResults(data, n)
}

// countEffects returns how many effects and arguments the well-formed
// results at the start of data hold, so that unpackResults allocates its
// slices once. It is a hint: the count stops at the first malformed result,
// and is capped at what data could hold.
func countEffects(data string) (effects, args int) {
	d := decoder{s: data}
	for !d.done() {
		size := d.uvarint()
		if d.err != nil || size > uint64(len(d.s)) {
			break
		}
		r := decoder{s: d.s[:size]}
		d.s = d.s[size:]
		r.uvarint()
		r.str()
		for !r.done() {
			k := r.uvarint()
			for i := uint64(0); i < k && r.err == nil; i++ {
				r.str()
			}
			if r.err == nil && k >= 2 {
				effects, args = effects+1, args+int(k)-2
			}
		}
	}
	// An effect takes at least 3 bytes, an argument at least 1.
	return min(effects, len(data)/3), min(args, len(data))
}

// result decodes one packed result; its effects are appended to u.
func (u *effectsUnpacker) result(rec string) Result {
	if len(rec) > MaxAnswerBytes {
		return Result{Err: fmt.Sprintf("malformed answer: packed effects: %d bytes for one order, more than %d", len(rec), MaxAnswerBytes), Permanent: true}
	}
	d := decoder{s: rec}
	flags := d.uvarint()
	text := d.str()
	if d.err != nil {
		return Result{Err: "malformed answer: packed result: " + d.err.Error(), Permanent: true}
	}
	r := Result{Err: boundedText(text), Permanent: flags&resultPermanent != 0}
	effects, err := u.unpack(d.s)
	if err != nil {
		return Result{Err: "malformed answer: " + err.Error(), Permanent: true}
	}
	if len(effects) > 0 {
		r.Effects = effects
	}
	return r
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads the compact encoding from s, cutting strings out of it. The
// first error sticks; later reads return zero values.
type decoder struct {
	s   string
	err error
	// long is the length of the longest string read so far.
	long uint64
}

func (d *decoder) done() bool { return d.err != nil || len(d.s) == 0 }

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var v uint64
	for i := 0; i < len(d.s) && i < binary.MaxVarintLen64; i++ {
		c := d.s[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			d.s = d.s[i+1:]
			return v
		}
	}
	d.err = errTruncated
	return 0
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) fixed64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.s) < 8 {
		d.err = errTruncated
		return 0
	}
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(d.s[i])
	}
	d.s = d.s[8:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.s)) {
		d.err = errTruncated
		return ""
	}
	v := d.s[:n]
	d.s = d.s[n:]
	d.long = max(d.long, n)
	return v
}
