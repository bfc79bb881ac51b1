package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// PrivateDir creates the private directory of one plugin process inside
// parent (the host's own socket directory) and returns it, with its TMPDIR
// tmp/ beneath. With Identity, both belong to the host's user and the
// plugin's group, mode 0770: the plugin may create its socket and temp files
// there and the host may reach them, nobody else. parent is opened for
// traversal (0711) so the plugin's user can reach its own directory.
func PrivateDir(plan Plan, parent, name string) (string, error) {
	if parent == "" {
		parent = os.TempDir()
	} else if plan.UID >= 0 {
		if err := os.Chmod(parent, 0o711); err != nil {
			return "", fmt.Errorf("open %s for traversal by the plugins' user: %w", parent, err)
		}
	}
	dir, err := os.MkdirTemp(parent, name+"-")
	if err != nil {
		return "", fmt.Errorf("create private directory: %w", err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("create private directory: %w", err)
	}
	if plan.UID >= 0 {
		for _, d := range []string{dir, tmp} {
			if err := os.Chown(d, -1, plan.GID); err != nil {
				_ = os.RemoveAll(dir)
				return "", fmt.Errorf("give %s to the plugins' group %d (the host's user must be root or a member of it; the shipped sysusers file makes eventhost one): %w", d, plan.GID, err)
			}
			if err := os.Chmod(d, 0o770); err != nil {
				_ = os.RemoveAll(dir)
				return "", fmt.Errorf("create private directory: %w", err)
			}
		}
	}
	return dir, nil
}

// TempDir is the TMPDIR inside a directory from PrivateDir.
func TempDir(dir string) string { return filepath.Join(dir, "tmp") }

// Command returns the command that runs spec.Binary inside the sandbox of
// plan: the host's own binary as the launcher, which applies what plan has
// and then executes the plugin in its place (same pid, same stdio, the
// environment the caller sets on the command). The parent-death signal is
// set here too, so a launcher cannot outlive the host either. The launcher
// checks spec.SHA256 on the file it executes.
func Command(plan Plan, spec Spec) (*exec.Cmd, error) {
	bin, err := filepath.Abs(spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("plugin binary %s: %w", spec.Binary, err)
	}
	spec.Binary = bin
	spec.UID, spec.GID = plan.UID, plan.GID
	spec.Parent = os.Getpid()
	spec.Apply = nil
	for _, s := range plan.Protections {
		if s.Available {
			spec.Apply = append(spec.Apply, s.Name)
		}
	}
	arg, err := spec.encode()
	if err != nil {
		return nil, err
	}
	// /proc/self/exe is the running binary even when an upgrade replaced
	// the file on disk, so host and launcher always agree on the spec.
	cmd := exec.Command("/proc/self/exe", LauncherArg, arg)
	cmd.Args[0] = "eventhost-sandbox"
	cmd.Dir = TempDir(spec.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}
