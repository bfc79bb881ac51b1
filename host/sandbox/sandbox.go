// Package sandbox confines plugin processes. A plugin is untrusted code: it
// may talk to the host over its own socket and nothing else. The host cannot
// run code between fork and exec (Go), so it starts its own binary as a small
// launcher (see Command and LauncherMain) that drops to the plugin's user,
// sets no_new_privs, restricts itself with Landlock and a seccomp socket
// filter, and then executes the plugin binary, which inherits all of it.
//
// What the kernel or the host's privileges cannot provide is reported, not
// skipped in silence: Probe returns every protection with whether it is
// available and why not, the host logs and exports that, and a config with
// sandbox { require = true } refuses to launch a plugin without all of them.
package sandbox

import (
	"fmt"
	"slices"
	"strings"
)

// The protections, by the name the log, `eventhost validate` and the
// eventhost_sandbox_protection metric use.
const (
	// Identity: plugins run as plugin_user, not as the host's user, so file
	// permissions and /proc keep them away from the host's files and
	// process. Needs root or CAP_SETUID and CAP_SETGID.
	Identity = "identity"
	// HostNotDumpable: the host is non-dumpable, so no process without
	// CAP_SYS_PTRACE reads its /proc/<pid>/environ or mem, or ptraces it.
	HostNotDumpable = "host_not_dumpable"
	// NoNewPrivs: a plugin can never gain privileges (setuid binaries, file
	// capabilities).
	NoNewPrivs = "no_new_privs"
	// ParentDeathSignal: a plugin is killed when the host dies.
	ParentDeathSignal = "parent_death_signal"
	// LandlockFS: a plugin reads only the system directories, its binary,
	// its read_paths, and writes only its private directory.
	LandlockFS = "landlock_fs"
	// LandlockTCP: Landlock refuses TCP bind and connect (ABI 4), a second
	// layer under SocketFilter.
	LandlockTCP = "landlock_tcp"
	// LandlockScope: a plugin cannot connect to abstract unix sockets or
	// signal processes outside its own sandbox (ABI 6).
	LandlockScope = "landlock_scope"
	// SocketFilter: a seccomp filter lets a plugin create unix sockets only:
	// no TCP, UDP, MPTCP, raw, netlink or packet sockets, and no io_uring
	// (which could create sockets past the filter).
	SocketFilter = "socket_filter"
)

// Protections lists every protection, in the order they are reported.
func Protections() []string {
	return []string{Identity, HostNotDumpable, NoNewPrivs, ParentDeathSignal, LandlockFS, LandlockTCP, LandlockScope, SocketFilter}
}

// SimulateMissingEnv names an environment variable of the host that makes
// Probe report the listed protections (comma-separated names, or "all") as
// unavailable, and the launcher not apply them. It exists for tests of the
// degraded mode, which need a kernel without Landlock; it never adds a
// protection, and the host warns about each one it removes like about a
// real gap.
const SimulateMissingEnv = "EVENTHOST_SANDBOX_SIMULATE_MISSING"

// Status is one protection and whether plugins get it.
type Status struct {
	Name      string
	Available bool
	// Why says, when not Available, what is missing and how to get it.
	Why string
}

// Plan is what the sandbox can do on this host for a plugin launch.
type Plan struct {
	Protections []Status
	// UID and GID are the plugin's identity when Identity is available;
	// -1 when plugins run as the host's user.
	UID, GID int
	// User names the plugin's account ("" when not switching).
	User string
	// LandlockABI is the kernel's Landlock ABI version; 0 without Landlock.
	LandlockABI int
}

// Has reports whether protection name is available.
func (p Plan) Has(name string) bool {
	for _, s := range p.Protections {
		if s.Name == name {
			return s.Available
		}
	}
	return false
}

// Missing returns the protections that are not available.
func (p Plan) Missing() []Status {
	var out []Status
	for _, s := range p.Protections {
		if !s.Available {
			out = append(out, s)
		}
	}
	return out
}

// RequireError is returned when sandbox { require = true } and some
// protection is missing.
type RequireError struct {
	Missing []Status
}

func (e *RequireError) Error() string {
	parts := make([]string, len(e.Missing))
	for i, s := range e.Missing {
		parts[i] = s.Name + " (" + s.Why + ")"
	}
	return fmt.Sprintf("sandbox { require = true }, but this host cannot provide %d plugin protection(s): %s",
		len(e.Missing), strings.Join(parts, "; "))
}

// Require returns a *RequireError naming the missing protections, or nil.
func (p Plan) Require() error {
	if m := p.Missing(); len(m) > 0 {
		return &RequireError{Missing: m}
	}
	return nil
}

// simulated returns the protections env (an os.Environ list) asks Probe to
// pretend are missing.
func simulated(environ []string) []string {
	for _, kv := range environ {
		name, v, _ := strings.Cut(kv, "=")
		if name != SimulateMissingEnv || v == "" {
			continue
		}
		if v == "all" {
			return Protections()
		}
		return strings.Split(v, ",")
	}
	return nil
}

// applySimulation marks the protections named in environ's
// SimulateMissingEnv missing, and drops the identity they stand for.
func applySimulation(p *Plan, environ []string) {
	sim := simulated(environ)
	for i := range p.Protections {
		s := &p.Protections[i]
		if s.Available && slices.Contains(sim, s.Name) {
			s.Available = false
			s.Why = "simulated by " + SimulateMissingEnv
		}
	}
	if !p.Has(Identity) {
		p.UID, p.GID, p.User = -1, -1, ""
	}
}
