package apply

import (
	"strconv"
	"strings"
	"testing"
)

// The effects' runs, as apply.lua reads them: a run holds commands of one
// name and argument count on consecutive keys, and names its first key
// only. Anything else starts a new run: another command, another count, a
// key out of sequence (the same key again, a gap, a key before).
func TestOpRunsNameTheirFirstKey(t *testing.T) {
	type op struct {
		cmd  string
		key  int
		args []string
	}
	ops := []op{
		{"SADD", 8, []string{"a"}}, {"SADD", 9, []string{"b"}}, {"SADD", 10, []string{"c"}}, // one run
		{"SADD", 12, []string{"d"}},          // a gap
		{"SADD", 12, []string{"e"}},          // the same key again
		{"SADD", 13, []string{"f", "g"}},     // another count
		{"HINCRBY", 14, []string{"x", "1"}},  // another command
		{"HINCRBY", 15, []string{"y", "2"}},  // joins it
		{"HINCRBY", 300, []string{"z", "3"}}, // a key past 255 (cut from the text)
		{"HINCRBY", 301, []string{"w", "4"}}, // joins it
		{"HINCRBY", 7, []string{"v", "5"}},   // a key before
	}
	var a args
	at := a.reserve()
	w := opWriter{a: &a}
	for i := range ops {
		w.op(ops[i].cmd, ops[i].key, len(ops[i].args))
		for j := range ops[i].args {
			a.str(&ops[i].args[j])
		}
	}
	w.end()
	a.set(at, w.n)
	want := "7 " +
		"SADD 1 3 8 a b c " +
		"SADD 1 1 12 d " +
		"SADD 1 1 12 e " +
		"SADD 2 1 13 f g " +
		"HINCRBY 2 2 14 x 1 y 2 " +
		"HINCRBY 2 2 300 z 3 w 4 " +
		"HINCRBY 2 1 7 v 5"
	var got []string
	for _, v := range a.done() {
		switch v := v.(type) {
		case string:
			got = append(got, v)
		case *string:
			got = append(got, *v)
		case int:
			got = append(got, strconv.Itoa(v))
		default:
			t.Fatalf("argument %T", v)
		}
	}
	if strings.Join(got, " ") != want {
		t.Errorf("runs:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}
