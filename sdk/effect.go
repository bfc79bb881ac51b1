package sdk

import (
	"strconv"
	"strings"
	"unsafe"
)

// Effect is one Redis write, kept as data so the host can check it against
// the plugin's declared keys and apply a whole batch atomically.
type Effect struct {
	Command string
	Key     string
	Args    []string
}

// Effects collects the writes for one order. The zero value is ready to use.
type Effects struct {
	list []Effect
	// args holds the arguments of every effect in list, each effect's Args
	// a window of it: one slice, reused after Reset, instead of one per
	// effect.
	args []string
	// text holds the numbers the helpers format and the strings Concat
	// builds, for every order e serves: a string cut from it costs no
	// allocation of its own. A pointer, so that copies of e append to one
	// buffer rather than over each other's strings.
	text *textBuffer
	// from and fromArgs are where the effects of the plugin handling the
	// order begin in list and args: 0, but for a member of a Combine, which
	// sees (and may Reset) only its own, as when it runs alone.
	from, fromArgs int
}

// textBuffer is storage that strings are cut from. Its bytes are only ever
// appended, never rewritten (Reset leaves it alone; a full buffer is
// replaced, not reused), so a string cut from it never changes under its
// reader; it keeps its buffer alive as long as it is referenced.
type textBuffer struct{ b []byte }

// textChunk is the size of a text buffer: some hundred orders' numbers and
// keys. Longer strings are allocated on their own.
const textChunk = 8 << 10

// room returns e's text buffer with room for n more bytes.
func (e *Effects) room(n int) *textBuffer {
	if e.text == nil {
		e.text = &textBuffer{}
	}
	if t := e.text; cap(t.b)-len(t.b) < n {
		t.b = make([]byte, 0, textChunk)
	}
	return e.text
}

// since returns the bytes appended to t from offset from on as a string,
// without copying them: t never rewrites them (see textBuffer).
func (t *textBuffer) since(from int) string {
	b := t.b[from:]
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// formatInt is strconv.FormatInt(n, 10) without an allocation.
func (e *Effects) formatInt(n int64) string {
	if 0 <= n && n < 100 {
		return strconv.FormatInt(n, 10) // strconv's own constants
	}
	t := e.room(20)
	from := len(t.b)
	t.b = strconv.AppendInt(t.b, n, 10)
	return t.since(from)
}

// formatFloat is FormatFloat(f) without an allocation.
func (e *Effects) formatFloat(f float64) string {
	t := e.room(32) // a longer number (1e300) grows the buffer, to a new array
	from := len(t.b)
	t.b = strconv.AppendFloat(t.b, f, 'f', -1, 64)
	return t.since(from)
}

// Concat returns the parts joined, as a + b would, built in storage e keeps
// across orders: a key or field made for each order ("sales:" + event)
// costs no allocation of its own. The string is valid and unchanged for
// good, but while it is referenced it keeps that storage (some KiB) alive:
// build a string you keep, in a cache say, with + instead.
func (e *Effects) Concat(parts ...string) string {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	switch {
	case n == 0:
		return ""
	case n > textChunk/8:
		return strings.Join(parts, "")
	}
	t := e.room(n)
	from := len(t.b)
	for _, p := range parts {
		t.b = append(t.b, p...)
	}
	return t.since(from)
}

// List returns the effects added so far. The slice, and the effects' Args,
// are only valid until the next Reset.
func (e *Effects) List() []Effect { return e.list[e.from:] }

// Reset empties e, keeping its storage.
func (e *Effects) Reset() { e.list, e.args = e.list[:e.from], e.args[:e.fromArgs] }

// release empties e for a later batch, dropping its references to this
// one's strings for the GC.
func (e *Effects) release() {
	clear(e.list[:cap(e.list)])
	clear(e.args[:cap(e.args)])
	e.from, e.fromArgs = 0, 0
	e.Reset()
}

// shelve makes the effects added so far invisible to List and Reset, for
// the next member of a Combine; unshelve shows them all again.
func (e *Effects) shelve()   { e.from, e.fromArgs = len(e.list), len(e.args) }
func (e *Effects) unshelve() { e.from, e.fromArgs = 0, 0 }

// Add appends a raw effect. Prefer the typed helpers: the host rejects
// commands outside its allowlist and malformed arguments. args is copied:
// a plugin may reuse its slice for the next effect without rewriting this
// one.
func (e *Effects) Add(command, key string, args ...string) {
	e.add(command, key, args...)
}

// add appends an effect, copying args into e.args: the helpers' argument
// slices then stay on the stack. When e.args grows, the windows already
// handed out keep the old array, which nothing writes to any more.
func (e *Effects) add(command, key string, args ...string) {
	var window []string
	if len(args) > 0 {
		from := len(e.args)
		e.args = append(e.args, args...)
		window = e.args[from:len(e.args):len(e.args)]
	}
	e.list = append(e.list, Effect{Command: command, Key: key, Args: window})
}

// HIncrBy adds n to the integer in hash field key.field.
func (e *Effects) HIncrBy(key, field string, n int64) {
	e.add("HINCRBY", key, field, e.formatInt(n))
}

// HIncrByFloat adds f to the number in hash field key.field.
func (e *Effects) HIncrByFloat(key, field string, f float64) {
	e.add("HINCRBYFLOAT", key, field, e.formatFloat(f))
}

// HSet sets hash field key.field to value.
func (e *Effects) HSet(key, field, value string) {
	e.add("HSET", key, field, value)
}

// SAdd adds members to the set at key.
func (e *Effects) SAdd(key string, members ...string) {
	e.Add("SADD", key, members...)
}

// ZIncrBy adds incr to member's score in the sorted set at key.
func (e *Effects) ZIncrBy(key string, incr float64, member string) {
	e.add("ZINCRBY", key, e.formatFloat(incr), member)
}

// PFAdd adds elements to the HyperLogLog at key.
func (e *Effects) PFAdd(key string, elements ...string) {
	e.Add("PFADD", key, elements...)
}

// IncrBy adds n to the integer at key.
func (e *Effects) IncrBy(key string, n int64) {
	e.add("INCRBY", key, e.formatInt(n))
}

// XAdd appends an entry with the given field/value pairs to the stream at
// key, trimming it to about maxLen entries when maxLen > 0.
func (e *Effects) XAdd(key string, maxLen int64, fieldValues ...string) {
	from := len(e.args)
	if maxLen > 0 {
		e.args = append(e.args, "MAXLEN", "~", e.formatInt(maxLen))
	}
	e.args = append(e.args, "*")
	e.args = append(e.args, fieldValues...)
	e.list = append(e.list, Effect{Command: "XADD", Key: key, Args: e.args[from:len(e.args):len(e.args)]})
}

// Overflow is a BITFIELD overflow mode.
type Overflow string

// The BITFIELD overflow modes. OverflowWrap is Redis' default.
const (
	OverflowWrap Overflow = "WRAP"
	OverflowSat  Overflow = "SAT"
	OverflowFail Overflow = "FAIL"
)

// BitfieldIncrBy adds incr to the counter of type typ (u8, i16, u32, …) at
// bit offset offset of the string at key, handling overflow as mode says.
// With OverflowWrap it is exactly `BITFIELD key INCRBY typ offset incr`.
func (e *Effects) BitfieldIncrBy(key, typ string, offset, incr int64, mode Overflow) {
	off, n := e.formatInt(offset), e.formatInt(incr)
	if mode == "" || mode == OverflowWrap {
		e.add("BITFIELD", key, "INCRBY", typ, off, n)
		return
	}
	e.add("BITFIELD", key, "OVERFLOW", string(mode), "INCRBY", typ, off, n)
}

// FormatFloat formats f the way the effect helpers send numbers to Redis:
// the shortest decimal that reads back as f, never in exponent form.
func FormatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
