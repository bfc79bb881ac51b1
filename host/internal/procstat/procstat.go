// Package procstat reads what Linux's /proc/<pid>/stat says of a process,
// for the tests and benchmarks that watch the host and its plugin
// processes from outside.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Stat is a process' line in /proc/<pid>/stat, the parts the tests read.
type Stat struct {
	PID, PPID int
	// State is R, S, D, Z, …
	State byte
	// CPU is the user and system time the process has used.
	CPU time.Duration
}

// ticks is USER_HZ, the unit of /proc's times: 100 on every Linux build.
const ticks = 100

// Read reads pid's stat; an error means the process is gone (or /proc is
// not Linux's).
func Read(pid int) (Stat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	return parse(pid, string(data))
}

// parse reads a stat line: "pid (comm) state ppid …", where comm may hold
// spaces and parentheses, so fields count from its last ')'. utime and
// stime are the 14th and 15th fields of the line.
func parse(pid int, line string) (Stat, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: no command name in %q", pid, line)
	}
	f := strings.Fields(line[i+1:])
	if len(f) < 13 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %d fields after the command name, want 13 or more", pid, len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	user, err2 := strconv.ParseInt(f[11], 10, 64)
	sys, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: unreadable ppid, utime or stime in %q", pid, line)
	}
	return Stat{PID: pid, PPID: ppid, State: f[0][0], CPU: time.Duration(user+sys) * time.Second / ticks}, nil
}
