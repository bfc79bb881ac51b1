package pluginhost

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run true: %v", err)
	}
	return cmd.Process.Pid
}

// TestNewSocketDirRemovesStaleOnes: a host's socket directory carries its
// pid; the next host removes those whose host is gone, and only those.
func TestNewSocketDirRemovesStaleOnes(t *testing.T) {
	base := t.TempDir()
	dead := strconv.Itoa(deadPID(t))
	live := strconv.Itoa(os.Getppid()) // the go tool: alive while the test runs
	dirs := map[string]bool{           // name → must survive
		"eventhost-plugins-" + dead + "-123":     false,
		"eventhost-plugins-" + live + "-456":     true,
		"eventhost-plugins-123456789":            true, // an older host's: no pid
		"eventhost-plugins-x-1":                  true,
		"other-" + dead + "-1":                   true,
		"eventhost-plugins-" + dead + "-9/inner": false,
	}
	for name := range dirs {
		if err := os.MkdirAll(filepath.Join(base, name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// A socket file left inside a stale directory goes with it.
	if err := os.WriteFile(filepath.Join(base, "eventhost-plugins-"+dead+"-123", "plugin.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mine, err := NewSocketDir(base, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if want := "eventhost-plugins-" + strconv.Itoa(os.Getpid()) + "-"; filepath.Dir(mine) != base || !strings.HasPrefix(filepath.Base(mine), want) {
		t.Errorf("NewSocketDir = %s, want %s/%s…", mine, base, want)
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{filepath.Base(mine)}
	for name, keep := range dirs {
		if keep {
			want = append(want, name)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after NewSocketDir, %s holds %q, want %q", base, got, want)
	}
	// Its own directory survives the next host's clean-up while it runs.
	if n := RemoveStaleSocketDirs(base); n != 0 {
		t.Errorf("RemoveStaleSocketDirs removed %d directories of live hosts", n)
	}
}
