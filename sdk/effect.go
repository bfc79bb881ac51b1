package sdk

import "strconv"

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
}

// List returns the effects added so far. The slice, and the effects' Args,
// are only valid until the next Reset.
func (e *Effects) List() []Effect { return e.list }

// Reset empties e, keeping its storage.
func (e *Effects) Reset() { e.list, e.args = e.list[:0], e.args[:0] }

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
	e.add("HINCRBY", key, field, strconv.FormatInt(n, 10))
}

// HIncrByFloat adds f to the number in hash field key.field.
func (e *Effects) HIncrByFloat(key, field string, f float64) {
	e.add("HINCRBYFLOAT", key, field, FormatFloat(f))
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
	e.add("ZINCRBY", key, FormatFloat(incr), member)
}

// PFAdd adds elements to the HyperLogLog at key.
func (e *Effects) PFAdd(key string, elements ...string) {
	e.Add("PFADD", key, elements...)
}

// IncrBy adds n to the integer at key.
func (e *Effects) IncrBy(key string, n int64) {
	e.add("INCRBY", key, strconv.FormatInt(n, 10))
}

// XAdd appends an entry with the given field/value pairs to the stream at
// key, trimming it to about maxLen entries when maxLen > 0.
func (e *Effects) XAdd(key string, maxLen int64, fieldValues ...string) {
	from := len(e.args)
	if maxLen > 0 {
		e.args = append(e.args, "MAXLEN", "~", strconv.FormatInt(maxLen, 10))
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
	off, n := strconv.FormatInt(offset, 10), strconv.FormatInt(incr, 10)
	if mode == "" || mode == OverflowWrap {
		e.add("BITFIELD", key, "INCRBY", typ, off, n)
		return
	}
	e.add("BITFIELD", key, "OVERFLOW", string(mode), "INCRBY", typ, off, n)
}

// FormatFloat formats f the way the effect helpers send numbers to Redis:
// the shortest decimal that reads back as f, never in exponent form.
func FormatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
