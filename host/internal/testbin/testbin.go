// Package testbin builds eventhost's binaries for integration tests, once per
// test process, into a temporary directory laid out like `make build`'s bin/.
//
// The directory (90–130 MB) belongs to the test process: a package that uses
// testbin runs its tests through Main, which removes it when they end, and
// the first build of any later process removes the directories of test
// processes that died without cleaning up (their pid is in the name).
package testbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Bundled lists the plugins built from plugins/<name>/cmd/eventhost-plugin-<name>.
var bundled = []string{"sales-histogram", "events-summary", "customer-invoices", "tutorial-metrics"}

// dirPrefix starts the name of every build directory, followed by the pid
// of the test process that owns it.
const dirPrefix = "eventhost-testbin-"

// The build is shared by every test of the process: this is the test
// process' cache, not state a test could observe.
var (
	once   sync.Once
	dir    string
	errOut error
	mu     sync.Mutex
	extra  = map[string]string{}
)

// Main runs the package's tests and removes the build directory after them,
// pass or fail: call it from TestMain as os.Exit(testbin.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(os.Stderr, "testbin: remove %s: %v\n", dir, err)
		}
	}
	return code
}

// Dir returns a directory holding eventhost and plugins/eventhost-plugin-*
// for the bundled plugins. The first call builds them. Under go test -short
// it skips the test: what needs real binaries runs in make test only.
func Dir(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (builds and runs eventhost binaries): runs in make test")
	}
	once.Do(func() {
		removeStale(os.TempDir())
		mu.Lock()
		dir, errOut = os.MkdirTemp("", dirPrefix+strconv.Itoa(os.Getpid())+"-")
		mu.Unlock()
		if errOut != nil {
			return
		}
		errOut = build(filepath.Join(dir, "eventhost"), "./host/cmd/eventhost")
		for _, p := range bundled {
			if errOut == nil {
				errOut = build(filepath.Join(dir, "plugins", "eventhost-plugin-"+p), "./plugins/"+p+"/cmd/eventhost-plugin-"+p)
			}
		}
	})
	if errOut != nil {
		t.Fatalf("build test binaries: %v", errOut)
	}
	return dir
}

// removeStale removes the build directories under tmp whose test process is
// gone (killed, or a package without Main). A directory of a live process,
// of another user, or without a pid in its name is left alone.
func removeStale(tmp string) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), dirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		// "<pid>-<random>"; the older "<random>" names say nothing.
		pidText, _, hasPid := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !hasPid || err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		info, err := e.Info()
		if st, ok := info.Sys().(*syscall.Stat_t); err != nil || !ok || int(st.Uid) != os.Getuid() {
			continue
		}
		_ = os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
}

// alive reports whether a process with pid exists (EPERM: it does, another
// user's).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Eventhost returns the path of the eventhost binary.
func Eventhost(t testing.TB) string { return filepath.Join(Dir(t), "eventhost") }

// PluginDir returns the directory of the bundled plugin binaries.
func PluginDir(t testing.TB) string { return filepath.Join(Dir(t), "plugins") }

// Build builds the main package at pkg (relative to the repository root)
// into the test binary directory under name, once, and returns its path.
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	d := Dir(t)
	mu.Lock()
	defer mu.Unlock()
	if p, ok := extra[pkg]; ok {
		return p
	}
	out := filepath.Join(d, "extra", name)
	if err := build(out, pkg); err != nil {
		t.Fatalf("build %s: %v", pkg, err)
	}
	extra[pkg] = out
	return out
}

func build(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = repoRoot()
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return err
	}
	// The host refuses plugin binaries that others could change; a umask
	// of 002 would make go build's output group-writable.
	if err := os.Chmod(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.Chmod(out, 0o755)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}
