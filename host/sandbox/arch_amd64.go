//go:build linux

package sandbox

import "golang.org/x/sys/unix"

// auditArch is the seccomp architecture of this build; 0 where the socket
// filter is not written for it.
const auditArch = unix.AUDIT_ARCH_X86_64
