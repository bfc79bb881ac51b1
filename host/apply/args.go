package apply

import "strconv"

// args builds the arguments of one Redis command, a script run of tens of
// thousands of them, without an allocation per argument: go-redis takes
// them as []any, and putting a string or a large integer into an interface
// allocates. Instead
//   - strings go in as pointers (go-redis writes a *string as the string)
//     to where the plan or the batch keeps them, which must not change
//     until the command has run;
//   - integers in [0, 256) go in as themselves: Go boxes those without
//     allocating;
//   - other numbers are written as text into one buffer, and done cuts
//     them from a single string made of it.
//
// The zero value is empty and ready; reset makes it so again, keeping the
// memory.
type args struct {
	list []any
	text []byte
	cuts []textCut
	strs []string // the cut texts, which list points into
}

// textCut says that list[at] is text[from:to].
type textCut struct{ at, from, to int }

func (a *args) reset() {
	clear(a.list) // no pointers into the last command's strings linger
	clear(a.strs)
	a.list, a.text, a.cuts, a.strs = a.list[:0], a.text[:0], a.cuts[:0], a.strs[:0]
}

// boxed appends v, which is a constant (a command name, a literal string:
// boxed at compile time) or an interface value made once.
func (a *args) boxed(v any) { a.list = append(a.list, v) }

// str appends *s; s must stay unchanged until the command has run.
func (a *args) str(s *string) { a.list = append(a.list, s) }

func (a *args) int(n int) { a.int64(int64(n)) }

func (a *args) int64(n int64) {
	if n >= 0 && n < 256 {
		a.list = append(a.list, int(n))
		return
	}
	a.list = append(a.list, nil)
	a.setInt64(len(a.list)-1, n)
}

// decimal appends d as Redis reads a float increment.
func (a *args) decimal(d *decimalSum) {
	from := len(a.text)
	a.text = d.appendTo(a.text)
	a.cuts = append(a.cuts, textCut{at: len(a.list), from: from, to: len(a.text)})
	a.list = append(a.list, nil)
}

// reserve appends a placeholder for a number known later (a count), set
// with set.
func (a *args) reserve() int {
	a.list = append(a.list, nil)
	return len(a.list) - 1
}

func (a *args) set(at, n int) { a.setInt64(at, int64(n)) }

func (a *args) setInt64(at int, n int64) {
	if n >= 0 && n < 256 {
		a.list[at] = int(n)
		return
	}
	from := len(a.text)
	a.text = strconv.AppendInt(a.text, n, 10)
	a.cuts = append(a.cuts, textCut{at: at, from: from, to: len(a.text)})
}

// done returns the arguments, the texts of the numbers cut from one
// string. Nothing may be appended after it.
func (a *args) done() []any {
	s := string(a.text)
	if cap(a.strs) < len(a.cuts) {
		a.strs = make([]string, 0, len(a.cuts)+len(a.cuts)/4)
	}
	// strs does not grow below: the pointers taken into it stay valid.
	for _, c := range a.cuts {
		a.strs = append(a.strs, s[c.from:c.to])
		a.list[c.at] = &a.strs[len(a.strs)-1]
	}
	return a.list
}
