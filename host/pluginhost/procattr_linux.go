package pluginhost

import "syscall"

// childProcAttr asks the kernel to kill a plugin when the host dies, even by
// SIGKILL, so no plugin outlives its host.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
