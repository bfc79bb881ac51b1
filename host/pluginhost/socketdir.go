package pluginhost

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// socketDirPrefix starts the name of a host's plugin socket directory,
// followed by the host's pid: a host killed with SIGKILL cannot remove its
// directory, and the pid tells the next host whether its owner is gone.
const socketDirPrefix = "eventhost-plugins-"

// NewSocketDir creates the host's private directory for plugin sockets under
// base (os.TempDir() when empty), after removing those that hosts of this
// user left behind when they were killed. Remove it when the plugins are
// stopped.
func NewSocketDir(base string, logger hclog.Logger) (string, error) {
	if base == "" {
		base = os.TempDir()
	}
	if n := RemoveStaleSocketDirs(base); n > 0 {
		logger.Info("removed plugin socket directories of hosts that were killed", "count", n, "in", base)
	}
	dir, err := os.MkdirTemp(base, socketDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", fmt.Errorf("create plugin socket directory: %w", err)
	}
	return dir, nil
}

// RemoveStaleSocketDirs removes the socket directories under base whose host
// process no longer runs, and returns how many it removed. Directories of
// another user, of a live process, or without a pid in their name (an older
// host's) are left alone.
func RemoveStaleSocketDirs(base string) int {
	entries, err := os.ReadDir(base)
	if err != nil {
		return 0
	}
	removed := 0
	for _, e := range entries {
		pid, ok := socketDirPID(e.Name())
		if !ok || !e.IsDir() || pid == os.Getpid() {
			continue
		}
		info, err := e.Info()
		if err != nil || !abandoned(info, pid) {
			continue
		}
		if os.RemoveAll(filepath.Join(base, e.Name())) == nil {
			removed++
		}
	}
	return removed
}

// socketDirPID returns the pid in a socket directory's name
// ("eventhost-plugins-<pid>-<random>").
func socketDirPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, socketDirPrefix)
	if !ok {
		return 0, false
	}
	pidText, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidText)
	return pid, err == nil && pid > 0
}
