package sdk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The compact encoding carries a batch's orders and each order's effects as
// one bytes field instead of nested protobuf messages. Decoding copies the
// whole field into one string and cuts every value out of it, so a batch
// costs a handful of allocations instead of several per order and effect:
// that is most of what the plugin boundary costs the host.
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
	n := 0
	for _, o := range orders {
		n += 40 + len(o.ID) + len(o.Channel) + len(o.Event) + len(o.Who)
		for k, v := range o.Extra {
			n += 10 + len(k) + len(v)
		}
	}
	b := make([]byte, 0, n)
	for _, o := range orders {
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
	}
	return b
}

// unpackOrders is the inverse of packOrders.
func unpackOrders(data []byte) ([]Order, error) {
	d := decoder{s: string(data)}
	var out []Order
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
	b := make([]byte, 0, n)
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
// slice, each effect's Args a window of it.
func unpackEffects(data []byte) ([]Effect, error) {
	if len(data) > MaxAnswerBytes {
		return nil, fmt.Errorf("packed effects: %d bytes for one order, more than %d", len(data), MaxAnswerBytes)
	}
	d := decoder{s: string(data)}
	// Sized for a typical plugin's few effects, to grow rarely.
	effects := make([]Effect, 0, 4)
	args := make([]string, 0, 8)
	type span struct{ from, to int }
	spans := make([]span, 0, 4)
	for !d.done() {
		if len(effects) == MaxEffects {
			return nil, fmt.Errorf("packed effects: more than %d effects for one order", MaxEffects)
		}
		n := d.uvarint()
		if d.err == nil && (n < 2 || n > uint64(len(d.s)) || n-2 > MaxEffectArgs) {
			return nil, fmt.Errorf("packed effects: effect %d claims %d strings (command, key and at most %d arguments)", len(effects), n, MaxEffectArgs)
		}
		e := Effect{Command: d.str(), Key: d.str()}
		from := len(args)
		for i := uint64(2); i < n && d.err == nil; i++ {
			args = append(args, d.str())
		}
		if d.err != nil {
			return nil, fmt.Errorf("packed effects: effect %d: %w", len(effects), d.err)
		}
		if d.long > MaxArgBytes {
			return nil, fmt.Errorf("packed effects: effect %d holds a string of %d bytes, more than %d", len(effects), d.long, MaxArgBytes)
		}
		effects = append(effects, e)
		spans = append(spans, span{from, len(args)})
	}
	for i, sp := range spans {
		if sp.to > sp.from {
			effects[i].Args = args[sp.from:sp.to:sp.to]
		}
	}
	return effects, nil
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
