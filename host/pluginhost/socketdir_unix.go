//go:build unix

package pluginhost

import (
	"errors"
	"os"
	"syscall"
)

// abandoned reports whether the socket directory described by info belongs
// to this user and its host process pid no longer exists (EPERM from
// kill(pid, 0) means it exists, under another user).
func abandoned(info os.FileInfo, pid int) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != os.Getuid() {
		return false
	}
	err := syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}
