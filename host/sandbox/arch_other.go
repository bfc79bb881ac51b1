//go:build linux && !amd64 && !arm64

package sandbox

// auditArch is the seccomp architecture of this build; 0 where the socket
// filter is not written for it.
const auditArch = 0
