package redistest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Callgrind is a redis-server run under valgrind's callgrind tool, for
// benchmarks that count the instructions Redis executes: the same count for
// the same work whatever else the machine runs, where commandstats' and
// INFO cpu's times move with the machine's load. Redis runs some 50 times
// slower under it.
type Callgrind struct {
	*Server
	out   string // callgrind's output file; dumps are out.1, out.2, …
	parts int
}

// StartCallgrind launches redis-server under callgrind on a free port. A
// missing valgrind fails the benchmark.
func StartCallgrind(t testing.TB) *Callgrind {
	t.Helper()
	for _, tool := range []string{"valgrind", "callgrind_control", "callgrind_annotate"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (apt-get install valgrind): %v", tool, err)
		}
	}
	out := filepath.Join(t.TempDir(), "callgrind.out")
	wrap := []string{"valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, "--log-file=" + out + ".log"}
	s := start(t, nil, wrap, func(port string) []string { return []string{"--port", port} }, nil)
	return &Callgrind{Server: s, out: out}
}

// Zero sets the counts to zero: what Redis does next is counted alone.
func (c *Callgrind) Zero(t testing.TB) {
	t.Helper()
	c.control(t, "-z")
}

// Dump writes the counts since the last Zero and returns them as a profile.
func (c *Callgrind) Dump(t testing.TB) Profile {
	t.Helper()
	c.control(t, "-d")
	c.parts++
	file := c.out + "." + strconv.Itoa(c.parts)
	// callgrind_control returns once the request is taken; the file follows.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if st, err := os.Stat(file); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("callgrind wrote no %s within a minute", file)
		}
	}
	time.Sleep(200 * time.Millisecond) // let the write finish
	res, err := exec.Command("callgrind_annotate", "--inclusive=yes", "--threshold=100", file).Output()
	if err != nil {
		t.Fatalf("callgrind_annotate %s: %v", file, err)
	}
	return parseAnnotate(res)
}

func (c *Callgrind) control(t testing.TB, flag string) {
	t.Helper()
	pid := strconv.Itoa(c.cmd.Process.Pid)
	if out, err := exec.Command("callgrind_control", flag, pid).CombinedOutput(); err != nil {
		t.Fatalf("callgrind_control %s %s: %v\n%s", flag, pid, err, out)
	}
}

// Profile is instructions executed, per function, callees included.
type Profile map[string]int64

// parseAnnotate reads callgrind_annotate's lines "  1,234 (5.00%)  file:function [object]".
func parseAnnotate(out []byte) Profile {
	p := Profile{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		j := 1 // the share, "(5.00%)" or "( 5.00%)"
		for j < len(f) && !strings.HasSuffix(f[j], "%)") {
			j++
		}
		if j+1 >= len(f) || j > 2 {
			continue
		}
		n, err := strconv.ParseInt(strings.ReplaceAll(f[0], ",", ""), 10, 64)
		if err != nil {
			continue
		}
		fn := f[j+1]
		i := strings.LastIndex(fn, ":")
		if i < 0 {
			continue // PROGRAM TOTALS
		}
		fn = fn[i+1:]
		if _, seen := p[fn]; !seen { // a name twice (two objects): the first, the larger
			p[fn] = n
		}
	}
	return p
}
