package sandbox

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// systemDirs are readable by every plugin: what a Go, C or interpreted
// program needs to load and run. /usr/local is left out on purpose, as that
// is where eventhost, its plugins and their secrets may be installed;
// nothing here is executable except what execRights finds.
var systemDirs = []string{
	"/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32", "/usr/libexec", "/usr/share",
	"/lib", "/lib32", "/lib64", "/libx32",
}

// systemFiles are single files a program may read: the loader's cache, the
// time zone, and the harmless devices.
var systemFiles = []string{"/etc/ld.so.cache", "/etc/localtime", "/dev/urandom", "/dev/random", "/dev/zero"}

// LauncherMain is the launcher (see Command): args are os.Args. It never
// returns: it executes the plugin, or prints why it cannot on stderr (the
// host logs it under the plugin's name) and exits 1.
func LauncherMain(args []string) {
	// Everything below is per thread (no_new_privs, Landlock, seccomp,
	// credentials, capabilities, the parent-death signal): the thread that
	// applies it must be the one that executes the plugin.
	runtime.LockOSThread()
	if err := launch(args); err != nil {
		// One hclog JSON line: go-plugin logs it at its level under the
		// plugin's name, where the debug level would hide plain text.
		line, _ := json.Marshal(map[string]string{
			"@level": "error", "@message": "sandbox launcher: " + err.Error(),
			"@timestamp": time.Now().Format("2006-01-02T15:04:05.000Z07:00"),
		})
		fmt.Fprintf(os.Stderr, "%s\n", line)
		os.Exit(1)
	}
}

func launch(args []string) error {
	if len(args) != 3 || args[1] != LauncherArg {
		return fmt.Errorf("usage: %s <spec>", LauncherArg)
	}
	spec, err := decodeSpec(args[2])
	if err != nil {
		return err
	}
	apply := func(name string) bool { return slices.Contains(spec.Apply, name) }

	// The binary is opened (and hashed) as the host's user and executed
	// through this descriptor: what runs is what was checked, and its
	// directory need not be open to the plugin's user.
	bin, err := os.Open(spec.Binary)
	if err != nil {
		return fmt.Errorf("open plugin binary: %w", err)
	}
	if spec.SHA256 != "" {
		h := sha256.New()
		if _, err := io.Copy(h, bin); err != nil {
			return fmt.Errorf("hash %s: %w", spec.Binary, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != spec.SHA256 {
			return fmt.Errorf("binary %s has sha256 %s, but the config pins %s", spec.Binary, got, spec.SHA256)
		}
	}
	execs, script, err := execRights(bin, spec.Binary)
	if err != nil {
		return err
	}
	fd := int(bin.Fd())
	if script {
		// The kernel hands a script to its interpreter as /dev/fd/N,
		// which needs the descriptor open after exec.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("keep %s open for its interpreter: %w", spec.Binary, err)
		}
	}

	// The ruleset is built while the paths are still reachable by the
	// host's user; it is enforced after the switch to the plugin's.
	ruleset := -1
	if apply(LandlockFS) || apply(LandlockTCP) || apply(LandlockScope) {
		if ruleset, err = landlockRuleset(spec, apply, execs); err != nil {
			return err
		}
	}

	if apply(Identity) {
		if err := switchUser(spec.UID, spec.GID); err != nil {
			return err
		}
	}
	if err := dropCapabilities(); err != nil {
		return err
	}
	if apply(ParentDeathSignal) {
		// A change of credentials clears the parent-death signal.
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
			return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", err)
		}
		if os.Getppid() != spec.Parent {
			return fmt.Errorf("the host (pid %d) is gone", spec.Parent)
		}
	}
	if apply(NoNewPrivs) || ruleset >= 0 || apply(SocketFilter) {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
		}
	}
	if ruleset >= 0 {
		if err := ll.LandlockRestrictSelf(ruleset, 0); err != nil {
			return fmt.Errorf("landlock_restrict_self: %w", err)
		}
		unix.Close(ruleset)
	}
	if apply(SocketFilter) {
		if err := installSocketFilter(); err != nil {
			return err
		}
	}
	return execFD(fd, spec.Binary, os.Environ())
}

// execRights returns the files the plugin may execute: its binary, its ELF
// loader, and for a script its #! interpreter (through /usr/bin/env too)
// and that one's loader. script says whether the binary is a script.
func execRights(bin *os.File, path string) (execs []string, script bool, err error) {
	head := make([]byte, 256)
	n, _ := bin.ReadAt(head, 0)
	head = head[:n]
	if !bytes.HasPrefix(head, []byte("#!")) {
		return append([]string{path}, elfLoader(bin)...), false, nil
	}
	line, _, _ := strings.Cut(string(head[2:]), "\n")
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return nil, true, fmt.Errorf("%s starts with #! but names no interpreter", path)
	}
	interps := []string{fields[0]}
	if filepath.Base(fields[0]) == "env" && len(fields) > 1 && !strings.HasPrefix(fields[1], "-") {
		if p, err := exec.LookPath(fields[1]); err == nil {
			interps = append(interps, p)
		}
	}
	execs = []string{path}
	for _, in := range interps {
		real, err := filepath.EvalSymlinks(in)
		if err != nil {
			return nil, true, fmt.Errorf("interpreter of %s: %w", path, err)
		}
		execs = append(execs, real)
		if f, err := os.Open(real); err == nil {
			execs = append(execs, elfLoader(f)...)
			f.Close()
		}
	}
	return execs, true, nil
}

// elfLoader returns the dynamic loader (PT_INTERP) an ELF file names, which
// the kernel executes with it; none for a static binary.
func elfLoader(f *os.File) []string {
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(bufio.NewReader(p.Open()))
			if err != nil {
				return nil
			}
			if real, err := filepath.EvalSymlinks(strings.TrimRight(string(b), "\x00")); err == nil {
				return []string{real}
			}
		}
	}
	return nil
}

// landlockRuleset builds the plugin's Landlock ruleset: read the system
// directories and files and read_paths, execute only execs, read and write
// its private directory and /dev/null; no TCP; no abstract unix sockets or
// signals outside its own sandbox. It returns the ruleset's descriptor.
func landlockRuleset(spec Spec, apply func(string) bool, execs []string) (int, error) {
	cfg := landlock.Config{}
	var rules []landlock.Rule
	if apply(LandlockFS) {
		cfg.HandledAccessFS = landlock.V7.HandledAccessFS
		read := landlock.AccessFSSet(ll.AccessFSReadFile | ll.AccessFSReadDir)
		rules = append(rules,
			landlock.PathAccess(read, systemDirs...).IgnoreIfMissing(),
			landlock.PathAccess(ll.AccessFSReadFile, systemFiles...).IgnoreIfMissing(),
			landlock.PathAccess(ll.AccessFSReadFile|ll.AccessFSWriteFile|ll.AccessFSTruncate, "/dev/null").IgnoreIfMissing(),
			landlock.PathAccess(ll.AccessFSReadFile|ll.AccessFSExecute, execs...),
			landlock.RWDirs(spec.Dir),
		)
		for _, p := range spec.ReadPaths {
			fi, err := os.Stat(p)
			if err != nil {
				return -1, fmt.Errorf("read_paths: %w", err)
			}
			if fi.IsDir() {
				rules = append(rules, landlock.RODirs(p))
			} else {
				rules = append(rules, landlock.ROFiles(p))
			}
		}
	}
	if apply(LandlockTCP) {
		cfg.HandledAccessNet = ll.AccessNetBindTCP | ll.AccessNetConnectTCP
	}
	if apply(LandlockScope) {
		cfg.Scoped = ll.ScopeAbstractUnixSocket | ll.ScopeSignal
	}
	// Not BestEffort: the host planned only what the kernel's ABI has, and
	// a protection it planned must hold or the launch fails.
	fd, _, err := cfg.NewRulesetFD(rules...)
	if err != nil {
		return -1, fmt.Errorf("landlock ruleset: %w", err)
	}
	return fd, nil
}

// switchUser makes this thread (which executes the plugin) uid:gid with no
// supplementary groups.
func switchUser(uid, gid int) error {
	if uid <= 0 || gid <= 0 {
		return fmt.Errorf("refusing to run a plugin as uid %d gid %d", uid, gid)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("setresgid %d: %w", gid, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("setresuid %d: %w", uid, e)
	}
	// Going back must be impossible now.
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, 0, 0, 0); e == 0 {
		return fmt.Errorf("setresuid 0 still works after dropping to uid %d", uid)
	}
	return nil
}

// dropCapabilities empties this thread's capability sets, ambient included:
// a host given CAP_SETUID and CAP_SETGID by systemd keeps them across a
// switch between two non-root users, and the plugin must not.
func dropCapabilities() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	return nil
}

// execFD executes the open file fd in place of this process, as argv[0]
// path.
func execFD(fd int, path string, env []string) error {
	argv, err := cStrings([]string{path})
	if err != nil {
		return err
	}
	envv, err := cStrings(env)
	if err != nil {
		return err
	}
	empty, _ := unix.BytePtrFromString("")
	_, _, e := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), unix.AT_EMPTY_PATH, 0)
	return fmt.Errorf("execute %s: %w", path, e)
}

// cStrings is strs as a NULL-terminated array of C strings.
func cStrings(strs []string) ([]*byte, error) {
	out := make([]*byte, 0, len(strs)+1)
	for _, s := range strs {
		p, err := unix.BytePtrFromString(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, p)
	}
	return append(out, nil), nil
}
