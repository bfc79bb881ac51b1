package sandbox

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// socketFilter is a seccomp program that refuses (EPERM) socket and
// socketpair for any family but AF_UNIX, io_uring_setup (io_uring can create
// sockets without the socket system call), every x32 system call (whose
// numbers would slip past the checks) and any other architecture's calls.
// Everything else is allowed: it is a network filter, not a system call
// allowlist.
func socketFilter(arch uint32) []unix.SockFilter {
	const (
		offNr   = 0
		offArch = 4
		offArg0 = 16 // low 32 bits of args[0] on a little-endian machine
		x32Bit  = 0x40000000
	)
	deny := uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.EPERM)
	allow := uint32(unix.SECCOMP_RET_ALLOW)
	load := func(off uint32) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off}
	}
	jeq := func(k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: k, Jt: jt, Jf: jf}
	}
	ret := func(k uint32) unix.SockFilter { return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k} }
	// Jump offsets count instructions skipped after the jump.
	return []unix.SockFilter{
		/* 0 */ load(offArch),
		/* 1 */ jeq(arch, 0, 9), // other architecture → 11
		/* 2 */ load(offNr),
		/* 3 */ {Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: x32Bit, Jt: 7}, // → 11
		/* 4 */ jeq(unix.SYS_SOCKET, 3, 0), // → 8
		/* 5 */ jeq(unix.SYS_SOCKETPAIR, 2, 0), // → 8
		/* 6 */ jeq(unix.SYS_IO_URING_SETUP, 4, 0), // → 11
		/* 7 */ ret(allow),
		/* 8 */ load(offArg0),
		/* 9 */ jeq(unix.AF_UNIX, 0, 1), // → 10 or 11
		/* 10 */ ret(allow),
		/* 11 */ ret(deny),
	}
}

// installSocketFilter installs socketFilter on this thread; no_new_privs
// must be set.
func installSocketFilter() error {
	if auditArch == 0 {
		return fmt.Errorf("no socket filter for this architecture")
	}
	prog := socketFilter(auditArch)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0); err != nil {
		return fmt.Errorf("install seccomp socket filter: %w", err)
	}
	return nil
}
