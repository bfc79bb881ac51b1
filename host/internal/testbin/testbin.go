// Package testbin builds eventhost's binaries for integration tests, once per
// test process, into a temporary directory laid out like `make build`'s bin/.
package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Bundled lists the plugins built from plugins/<name>/cmd/eventhost-plugin-<name>.
var bundled = []string{"sales-histogram", "events-summary", "customer-invoices"}

var (
	once   sync.Once
	dir    string
	errOut error
	mu     sync.Mutex
	extra  = map[string]string{}
)

// Dir returns a directory holding eventhost and plugins/eventhost-plugin-*
// for the bundled plugins. The first call builds them.
func Dir(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		dir, errOut = os.MkdirTemp("", "eventhost-testbin-")
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
