package procstat

import (
	"os"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	// comm with spaces and parentheses, as a process may name itself.
	line := "4242 (eventhost (x) y) S 17 4242 4242 0 -1 4194560 900 0 0 0 250 125 0 0 20 0 9 0 1234 0 0\n"
	got, err := parse(4242, line)
	want := Stat{PID: 4242, PPID: 17, State: 'S', CPU: 3750 * time.Millisecond}
	if err != nil || got != want {
		t.Fatalf("parse = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"", "4242 eventhost S 17", "4242 (x) S 17 1 2", "4242 (x) S ppid 4242 4242 0 -1 0 0 0 0 0 1 1 0"} {
		if got, err := parse(4242, bad); err == nil {
			t.Errorf("parse(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestReadSelf(t *testing.T) {
	got, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got.PID != os.Getpid() || got.PPID != os.Getppid() || got.State != 'R' {
		t.Fatalf("Read(self) = %+v, want pid %d, ppid %d, running", got, os.Getpid(), os.Getppid())
	}
}
