//go:build unix

package pluginhost

import (
	"os"
	"syscall"
)

// ownerUID returns the uid owning fi's file.
func ownerUID(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
