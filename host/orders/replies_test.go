package orders

import (
	"reflect"
	"testing"
)

// TestHashReply: a hash's reply is read in either protocol, and any other
// reply, or one cut short or padded, is refused whole (nothing appended),
// so that its key is read again the usual way.
func TestHashReply(t *testing.T) {
	tests := []struct {
		raw  string
		want []string // names and values in turn; nil: refused
	}{
		{"%2\r\n$2\r\nts\r\n$1\r\n1\r\n$3\r\nwho\r\n$0\r\n\r\n", []string{"ts", "1", "who", ""}},
		{"*4\r\n$2\r\nts\r\n$1\r\n1\r\n$3\r\nwho\r\n$2\r\na\n\r\n", []string{"ts", "1", "who", "a\n"}},
		{"*0\r\n", []string{}},
		{"%0\r\n", []string{}},
		{"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", nil},
		{"-LOADING Redis is loading the dataset in memory\r\n", nil},
		{"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", nil}, // odd array
		{"%1\r\n$2\r\nts\r\n", nil},                      // cut short
		{"%1\r\n$2\r\nts\r\n$1\r\n1\r\nx", nil},          // trailing byte
		{"%1\r\n$2\r\nts\r\n$9\r\n1\r\n", nil},           // length past the end
		{"%1\r\n$2\r\nts\r\n:1\r\n", nil},                // not a bulk string
		{"%1\r\n$-1\r\n$1\r\n1\r\n", nil},                // null
		{"%99999999999999999999\r\n", nil},               // absurd count
		{"*-1\r\n", nil},
		{"", nil},
		{"%1\r\n$2\r\nts\r\n$1\r\n1\n\n", nil},
	}
	for _, tt := range tests {
		text, spans, ok := hashReply([]byte(tt.raw), []byte("kept"), []span{{0, 4}})
		if ok != (tt.want != nil) {
			t.Errorf("%q: ok = %v", tt.raw, ok)
			continue
		}
		if !ok {
			if string(text) != "kept" || len(spans) != 1 {
				t.Errorf("%q refused, but text %q and %d spans left", tt.raw, text, len(spans))
			}
			continue
		}
		got := []string{}
		for _, s := range spans[1:] {
			got = append(got, string(text[s.off:s.off+s.n]))
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q read as %q, want %q", tt.raw, got, tt.want)
		}
	}
}

// FuzzHashReply: no reply makes hashReply panic or read past what it was
// given.
func FuzzHashReply(f *testing.F) {
	f.Add([]byte("%2\r\n$2\r\nts\r\n$1\r\n1\r\n$3\r\nwho\r\n$0\r\n\r\n"))
	f.Add([]byte("*2\r\n$2\r\nts\r\n$1\r\n1\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		text, spans, ok := hashReply(raw, nil, nil)
		if !ok && (len(text) != 0 || len(spans) != 0) {
			t.Fatalf("refused, but appended")
		}
		for _, s := range spans {
			if s.off+s.n > len(text) {
				t.Fatalf("span %+v past text of %d", s, len(text))
			}
		}
	})
}
