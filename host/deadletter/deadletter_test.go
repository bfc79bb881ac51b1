package deadletter

import (
	"strings"
	"testing"
)

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"short", "abc", 3, "abc"},
		{"empty", "", 0, ""},
		{"one over", "abcd", 3, "abc…[truncated, 4 bytes]"},
		// é is 2 bytes: cutting inside it backs up to its start.
		{"inside a rune", "aéb", 2, "a…[truncated, 4 bytes]"},
		{"after a rune", "aéb", 3, "aé…[truncated, 4 bytes]"},
		{"invalid UTF-8 kept as is", "\xff\xff\xff\xff\xff", 2, "\xff\xff…[truncated, 5 bytes]"},
		{"1 MiB", strings.Repeat("i", 1<<20), 4, "iiii…[truncated, 1048576 bytes]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Truncate(tt.s, tt.n); got != tt.want {
				t.Errorf("Truncate(%.20q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
			}
		})
	}
}

// TestFieldsBounded: a dead letter of a 1 MiB id with a 1 MiB reason
// stores about 2 KiB, and says what was cut.
func TestFieldsBounded(t *testing.T) {
	e := Entry{OrderID: strings.Repeat("i", 1<<20), Channel: "c", Reason: strings.Repeat("r", 1<<20), Attempts: 1}
	f := e.Fields()
	total := 0
	for _, s := range f {
		total += len(s)
	}
	if total > MaxIDBytes+MaxReasonBytes+200 {
		t.Errorf("fields hold %d bytes, want about %d", total, MaxIDBytes+MaxReasonBytes)
	}
	want := map[string]string{
		"order_id": strings.Repeat("i", MaxIDBytes) + "…[truncated, 1048576 bytes]",
		"reason":   strings.Repeat("r", MaxReasonBytes) + "…[truncated, 1048576 bytes]",
		"channel":  "c", "plugin": "", "attempts": "1",
	}
	for i := 0; i+1 < len(f); i += 2 {
		if f[i+1] != want[f[i]] {
			t.Errorf("field %s = %.40q…, want %.40q…", f[i], f[i+1], want[f[i]])
		}
		delete(want, f[i])
	}
	if len(want) != 0 {
		t.Errorf("fields %v missing", want)
	}
	// At the bound nothing is cut.
	e = Entry{OrderID: strings.Repeat("i", MaxIDBytes), Reason: strings.Repeat("r", MaxReasonBytes)}
	if f := e.Fields(); f[1] != e.OrderID || f[7] != e.Reason {
		t.Errorf("an id and a reason at their bounds were cut")
	}
}
