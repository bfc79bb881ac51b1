//go:build !linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/eventhost/eventhost/host/config"
)

var errNotLinux = errors.New("the plugin sandbox is implemented for Linux only")

// HardenHost does nothing off Linux.
func HardenHost() error { return errNotLinux }

// Probe reports every protection missing off Linux.
func Probe(config.Sandbox, []string) (Plan, error) {
	p := Plan{UID: -1, GID: -1}
	for _, name := range Protections() {
		p.Protections = append(p.Protections, Status{Name: name, Why: errNotLinux.Error()})
	}
	return p, nil
}

// PrivateDir creates a private directory for one plugin process in parent.
func PrivateDir(_ Plan, parent, name string) (string, error) {
	dir, err := os.MkdirTemp(parent, name+"-")
	if err != nil {
		return "", fmt.Errorf("create private directory: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return "", fmt.Errorf("create private directory: %w", err)
	}
	return dir, nil
}

// TempDir is the TMPDIR inside a directory from PrivateDir.
func TempDir(dir string) string { return filepath.Join(dir, "tmp") }

// Command runs the plugin binary directly off Linux: there is no launcher,
// so the caller must check spec.SHA256 itself.
func Command(_ Plan, spec Spec) (*exec.Cmd, error) {
	return exec.Command(spec.Binary), nil
}

// LauncherMain exits: there is no launcher off Linux.
func LauncherMain([]string) {
	fmt.Fprintln(os.Stderr, "eventhost sandbox:", errNotLinux)
	os.Exit(1)
}
