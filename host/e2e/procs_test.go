package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/host/internal/procstat"
	"github.com/eventhost/eventhost/host/internal/testbin"
)

// The host's plugin processes, as /proc shows them.

// procInfo is a process as /proc shows it.
type procInfo struct {
	pid, ppid int
	state     byte   // R, S, D, Z, …
	exe       string // empty when unreadable (zombies, other users)
}

func (p procInfo) String() string {
	return fmt.Sprintf("%d(ppid %d, %c, %s)", p.pid, p.ppid, p.state, p.exe)
}

// readProc reads /proc/PID; ok is false when the process is gone.
func readProc(pid int) (p procInfo, ok bool) {
	st, err := procstat.Read(pid)
	if err != nil {
		return procInfo{}, false
	}
	p = procInfo{pid: pid, ppid: st.PPID, state: st.State}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		p.exe = exe
	} else if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		p.exe, _, _ = strings.Cut(string(cmdline), "\x00")
	}
	return p, true
}

func allProcs(t *testing.T) []procInfo {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

func inDir(exe, dir string) bool { return strings.HasPrefix(exe, dir+string(filepath.Separator)) }

// livePluginProcs lists the processes running a binary from dir that are not
// zombies.
func livePluginProcs(t *testing.T, dir string) []procInfo {
	t.Helper()
	var out []procInfo
	for _, p := range allProcs(t) {
		if p.state != 'Z' && inDir(p.exe, dir) {
			out = append(out, p)
		}
	}
	return out
}

// pluginChildren returns the pids of host's live children that run a plugin
// binary.
func pluginChildren(t *testing.T, host int) []int {
	t.Helper()
	var out []int
	for _, p := range livePluginProcs(t, testbin.PluginDir(t)) {
		if p.ppid == host {
			out = append(out, p.pid)
		}
	}
	return out
}

// pluginAlive reports whether pid still runs a plugin binary from dir and is
// not a zombie.
func pluginAlive(pid int, dir string) bool {
	p, ok := readProc(pid)
	return ok && p.state != 'Z' && inDir(p.exe, dir)
}
