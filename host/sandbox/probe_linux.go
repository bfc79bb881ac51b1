package sandbox

import (
	"fmt"
	"os"
	"os/user"
	"strconv"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"

	"github.com/eventhost/eventhost/host/config"
)

// HardenHost makes the calling process non-dumpable: its /proc/<pid>/environ
// and mem, which hold the Redis password, become root's, and only a process
// with CAP_SYS_PTRACE may ptrace it. It also turns off core dumps of the
// host. The host calls it first thing; Probe reports whether it held.
func HardenHost() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}

// Probe finds out what the sandbox can do for plugins on this host, under
// the config's sandbox block and environ (the host's environment, for
// SimulateMissingEnv). It errs only for a plugin_user that is unknown or
// privileged; missing protections are in the Plan.
func Probe(sb config.Sandbox, environ []string) (Plan, error) {
	p := Plan{UID: -1, GID: -1}
	add := func(name string, ok bool, why string) {
		s := Status{Name: name, Available: ok}
		if !ok {
			s.Why = why
		}
		p.Protections = append(p.Protections, s)
	}

	canSwitch, why := canSwitchUser()
	if canSwitch {
		u, err := pluginUser(sb)
		if err != nil {
			return Plan{}, err
		}
		p.UID, p.GID, p.User = u.uid, u.gid, u.name
		if u.uid == os.Geteuid() {
			canSwitch, why = false, fmt.Sprintf("plugin_user %s is the host's own user (uid %d)", u.name, u.uid)
			p.UID, p.GID, p.User = -1, -1, ""
		}
	}
	add(Identity, canSwitch, why)

	dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	add(HostNotDumpable, err == nil && dumpable == 0, "the host is dumpable (HardenHost was not called or failed)")
	add(NoNewPrivs, true, "")
	add(ParentDeathSignal, true, "")

	abi, err := ll.LandlockGetABIVersion()
	if err != nil {
		abi = 0
	}
	p.LandlockABI = abi
	noLandlock := fmt.Sprintf("the kernel's Landlock ABI is %d (%s)", abi, landlockHint(err))
	add(LandlockFS, abi >= 1, noLandlock+"; ABI 1 or later is needed")
	add(LandlockTCP, abi >= 4, noLandlock+"; ABI 4 or later is needed for TCP rules")
	add(LandlockScope, abi >= 6, noLandlock+"; ABI 6 or later is needed for scopes")

	// Seccomp filters need no privilege once no_new_privs is set; a
	// kernel built without them answers EINVAL here.
	_, err = unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	arch := auditArch != 0
	switch {
	case err != nil:
		add(SocketFilter, false, fmt.Sprintf("the kernel has no seccomp (prctl PR_GET_SECCOMP: %v)", err))
	case !arch:
		add(SocketFilter, false, "no seccomp filter for this CPU architecture (amd64 and arm64 have one)")
	default:
		add(SocketFilter, true, "")
	}

	applySimulation(&p, environ)
	return p, nil
}

func landlockHint(err error) string {
	if err != nil {
		return "not built into the kernel or not enabled at boot: add landlock to the lsm= kernel parameter"
	}
	return "upgrade the kernel"
}

// canSwitchUser reports whether the host may run plugins as another user:
// as root, or with CAP_SETUID and CAP_SETGID in its effective set (the
// shipped systemd unit grants those two and nothing else).
func canSwitchUser() (bool, string) {
	if os.Geteuid() == 0 {
		return true, ""
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, fmt.Sprintf("capget: %v", err)
	}
	need := uint32(1)<<unix.CAP_SETUID | uint32(1)<<unix.CAP_SETGID
	if data[0].Effective&need == need {
		return true, ""
	}
	return false, fmt.Sprintf("the host runs as uid %d without CAP_SETUID and CAP_SETGID, so plugins run as the host's user; run it as root or with AmbientCapabilities=CAP_SETUID CAP_SETGID (the shipped unit does)", os.Geteuid())
}

type account struct {
	name     string
	uid, gid int
}

// pluginUser resolves plugin_user: the configured account, or the default
// one, or nobody. Root, uid or gid 0, is refused.
func pluginUser(sb config.Sandbox) (account, error) {
	where := ""
	if sb.PluginUserRange != nil {
		where = sb.PluginUserRange.String() + ": "
	}
	names := []string{sb.PluginUser}
	if sb.PluginUser == "" {
		names = []string{config.DefaultPluginUser, config.FallbackPluginUser}
	}
	var lastErr error
	for _, name := range names {
		u, err := user.Lookup(name)
		if err != nil {
			if _, numeric := strconv.Atoi(name); numeric == nil {
				u, err = user.LookupId(name)
			}
		}
		if err != nil {
			lastErr = err
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			return account{}, fmt.Errorf("%splugin_user %s has uid %q gid %q, not numbers", where, name, u.Uid, u.Gid)
		}
		if uid == 0 || gid == 0 {
			return account{}, fmt.Errorf("%splugin_user %s is uid %d gid %d: plugins never run as root; name an unprivileged account", where, name, uid, gid)
		}
		return account{name: u.Username, uid: uid, gid: gid}, nil
	}
	if sb.PluginUser == "" {
		return account{}, fmt.Errorf("neither %s nor %s exists, and plugins never run as root: create %s (systemd-sysusers with the shipped sysusers file does) or set sandbox { plugin_user = \"...\" }: %w",
			config.DefaultPluginUser, config.FallbackPluginUser, config.DefaultPluginUser, lastErr)
	}
	return account{}, fmt.Errorf("%splugin_user %s: %w", where, sb.PluginUser, lastErr)
}
