package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/sandbox"
)

// binary is the content of the fake plugin binaries CheckBinary looks at; it
// never runs them.
var binary = []byte("#!/bin/sh\nexit 0\n")

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// layout makes a directory of mode dirMode holding an executable file of
// mode fileMode, in a fresh temporary directory, and returns the file's path.
// Modes are set with chmod, so the umask does not matter.
func layout(t *testing.T, dirMode, fileMode os.FileMode) string {
	t.Helper()
	return inNewDir(t, dirMode, func(path string) error {
		if err := os.WriteFile(path, binary, 0o700); err != nil {
			return err
		}
		return os.Chmod(path, fileMode)
	})
}

// link makes a symlink to target in a new directory of mode dirMode and
// returns its path.
func link(t *testing.T, target string, dirMode os.FileMode) string {
	t.Helper()
	return inNewDir(t, dirMode, func(path string) error { return os.Symlink(target, path) })
}

// inNewDir creates eventhost-plugin-x with create in a new directory, then
// gives the directory mode dirMode, and returns the path.
func inNewDir(t *testing.T, dirMode os.FileMode, create func(path string) error) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "eventhost-plugin-x")
	if err := create(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckBinary(t *testing.T) {
	tests := []struct {
		name string
		// setup returns the path to check.
		setup func(t *testing.T) string
		pin   string
		// want are substrings of the error, with PATH and DIR standing for
		// the path and its directory; none means accepted.
		want []string
	}{
		{name: "private file and directory", setup: func(t *testing.T) string { return layout(t, 0o755, 0o755) }},
		{name: "owner-only modes", setup: func(t *testing.T) string { return layout(t, 0o700, 0o500) }},
		{name: "sha256 pin matches", setup: func(t *testing.T) string { return layout(t, 0o755, 0o755) }, pin: sum(binary)},
		{name: "sha256 pin differs", setup: func(t *testing.T) string { return layout(t, 0o755, 0o755) },
			pin:  strings.Repeat("0", 64),
			want: []string{"plugin x: binary PATH has sha256 " + sum(binary) + ", but the config pins " + strings.Repeat("0", 64)}},
		{name: "missing", setup: func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") },
			want: []string{"plugin x: binary PATH", "no such file"}},
		{name: "not executable", setup: func(t *testing.T) string { return layout(t, 0o755, 0o644) },
			want: []string{"PATH is not an executable file"}},
		{name: "directory, not a file", setup: func(t *testing.T) string { return t.TempDir() },
			want: []string{"is not an executable file"}},
		{name: "group-writable binary", setup: func(t *testing.T) string { return layout(t, 0o755, 0o775) },
			want: []string{"plugin x: binary PATH is group- or world-writable (mode -rwxrwxr-x)", "run chmod go-w PATH"}},
		{name: "world-writable binary", setup: func(t *testing.T) string { return layout(t, 0o755, 0o757) },
			want: []string{"binary PATH is group- or world-writable", "chmod go-w PATH"}},
		{name: "world-writable binary with a good pin", setup: func(t *testing.T) string { return layout(t, 0o755, 0o777) },
			pin: sum(binary), want: []string{"chmod go-w PATH"}},
		{name: "group-writable directory", setup: func(t *testing.T) string { return layout(t, 0o775, 0o755) },
			want: []string{"plugin x: binary PATH: directory DIR is group- or world-writable (mode drwxrwxr-x)", "run chmod go-w DIR"}},
		{name: "world-writable directory", setup: func(t *testing.T) string { return layout(t, 0o777, 0o755) },
			want: []string{"directory DIR is group- or world-writable", "chmod go-w DIR"}},
		{name: "sticky world-writable directory, like /tmp", setup: func(t *testing.T) string {
			return layout(t, 0o777|os.ModeSticky, 0o755)
		}},
		{name: "symlink from a private directory", setup: func(t *testing.T) string {
			return link(t, layout(t, 0o755, 0o755), 0o755)
		}},
		{name: "symlink to a group-writable binary", setup: func(t *testing.T) string {
			return link(t, layout(t, 0o755, 0o775), 0o755)
		}, want: []string{"is group- or world-writable", "chmod go-w"}},
		{name: "symlink in a world-writable directory", setup: func(t *testing.T) string {
			return link(t, layout(t, 0o755, 0o755), 0o777)
		}, want: []string{"binary PATH: directory DIR is group- or world-writable", "chmod go-w DIR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.setup(t)
			err := CheckBinary("x", path, tt.pin)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("CheckBinary(%s) = %v, want accepted", path, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckBinary(%s) accepted it, want an error", path)
			}
			for _, w := range tt.want {
				w = strings.ReplaceAll(strings.ReplaceAll(w, "PATH", path), "DIR", filepath.Dir(path))
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CheckBinary error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestCheckBinaryOwner: a binary, or its directory, owned by another user
// (not root) is refused. Making such files takes root.
func TestCheckBinaryOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a file to another user")
	}
	const nobody = 65534
	t.Run("binary", func(t *testing.T) {
		path := layout(t, 0o755, 0o755)
		if err := os.Chown(path, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		err := CheckBinary("x", path, "")
		want := "plugin x: binary " + path + " is owned by uid 65534, not by the host's user (uid 0) or root; run chown 0 " + path
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckBinary = %v, want %q", err, want)
		}
	})
	t.Run("directory", func(t *testing.T) {
		path := layout(t, 0o755, 0o755)
		if err := os.Chown(filepath.Dir(path), nobody, nobody); err != nil {
			t.Fatal(err)
		}
		err := CheckBinary("x", path, "")
		want := "directory " + filepath.Dir(path) + " is owned by uid 65534"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckBinary = %v, want %q", err, want)
		}
	})
	t.Run("root-owned binary", func(t *testing.T) {
		path := layout(t, 0o755, 0o755)
		if err := os.Chown(path, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := CheckBinary("x", path, ""); err != nil {
			t.Errorf("CheckBinary = %v, want a root-owned binary accepted", err)
		}
	})
}

func TestPluginEnv(t *testing.T) {
	host := []string{
		"PATH=/usr/bin", "HOME=/home/e", "TZ=UTC", "LANG=C.UTF-8", "LC_TIME=de_DE", "GODEBUG=x=1",
		"EVENTHOST_REDIS_PASSWORD=s3cret", "REDISCLI_AUTH=s3cret", "AWS_SECRET_ACCESS_KEY=k", "PATHX=1",
		"PLUGIN_UNIX_SOCKET_DIR=/elsewhere",
	}
	got := strings.Join(pluginEnv(host, "/run/sock"), " ")
	want := "PATH=/usr/bin HOME=/home/e TZ=UTC LANG=C.UTF-8 LC_TIME=de_DE GODEBUG=x=1 PLUGIN_UNIX_SOCKET_DIR=/run/sock TMPDIR=/run/sock/tmp"
	if got != want {
		t.Errorf("pluginEnv =\n  %s\nwant\n  %s", got, want)
	}
}

// TestStartPrivateEnvAndSocket starts a real plugin and checks what it gets:
// none of the host's secrets in its environment, and its socket in a
// directory of its own inside the host's socket directory, removed with it.
func TestStartPrivateEnvAndSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("needs /proc to read the plugin's environment")
	}
	const secret = "pw-that-must-not-leak"
	t.Setenv("EVENTHOST_REDIS_PASSWORD", secret)
	socketDir := newSocketDir(t)
	cfg := config.Plugin{Name: "customer-invoices", Path: filepath.Join(testbin.PluginDir(t), "eventhost-plugin-customer-invoices")}
	p, err := start(context.Background(), cfg, hclog.NewNullLogger(), socketDir)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer p.kill()

	rc := p.client.ReattachConfig()
	if rc == nil {
		t.Fatal("no reattach config: the plugin is not running")
	}
	environ, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(rc.Pid), "environ"))
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(strings.TrimRight(string(environ), "\x00"), "\x00")
	for _, kv := range env {
		if strings.Contains(kv, secret) || strings.HasPrefix(kv, "EVENTHOST_REDIS") {
			t.Errorf("the plugin's environment holds %q", kv)
		}
	}
	if !strings.Contains(string(environ), "PLUGIN_UNIX_SOCKET_DIR="+p.sockets) {
		t.Errorf("the plugin's environment has no PLUGIN_UNIX_SOCKET_DIR=%s: %q", p.sockets, env)
	}
	if filepath.Dir(p.sockets) != socketDir {
		t.Errorf("socket directory %s is not inside %s", p.sockets, socketDir)
	}
	if sock := rc.Addr.String(); filepath.Dir(sock) != p.sockets {
		t.Errorf("the plugin listens on %s, want a socket in %s", sock, p.sockets)
	}
	fi, err := os.Stat(p.sockets)
	if err != nil {
		t.Fatal(err)
	}
	// The host's and the plugin's group's only (see sandbox.PrivateDir).
	plan, err := sandbox.Probe(cfg.Sandbox, os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	wantMode, wantGID := os.FileMode(0o700), os.Getegid()
	if plan.GID >= 0 {
		wantMode, wantGID = 0o770, plan.GID
	}
	if fi.Mode().Perm() != wantMode {
		t.Errorf("socket directory mode %s, want %s", fi.Mode(), wantMode)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Gid) != wantGID {
		t.Errorf("socket directory group %d, want %d", st.Gid, wantGID)
	}
	p.kill()
	if _, err := os.Stat(p.sockets); !os.IsNotExist(err) {
		t.Errorf("socket directory %s still there after kill (%v)", p.sockets, err)
	}
}

// TestPrepareAllowKeys launches a real plugin with allow_keys that fit its
// declared patterns, and with one that cannot match any of them: that is a
// config error at the allow_keys line.
func TestPrepareAllowKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	path := filepath.Join(testbin.PluginDir(t), "eventhost-plugin-events-summary")
	tests := []struct {
		name  string
		allow string
		want  string // "" means accepted
	}{
		{"narrower", `["sales:*"]`, ""},
		{"all", `["*"]`, ""},
		{"one unreachable", `["sales:*", "sales_sumary"]`,
			`allow_keys pattern matches no declared key; Plugin "events-summary" declares the key patterns ["sales_summary" "sales:*"]; allow_keys ["sales_sumary"] can never match one of them`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "plugin \"events-summary\" {\n  path = \"" + path + "\"\n\n  allow_keys = " + tt.allow + "\n}\n"
			cfg, diags := config.Parse(filepath.Join(t.TempDir(), "eventhost.hcl"), []byte(src))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			p, err := prepare(context.Background(), cfg.Plugins[0], hclog.NewNullLogger(), newSocketDir(t))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("prepare: %v", err)
				}
				p.proc.kill()
				return
			}
			ds, ok := AsConfigError(err)
			if !ok {
				t.Fatalf("prepare = %v, want a config error", err)
			}
			d := ds[0]
			if msg := d.Summary + "; " + d.Detail; !strings.Contains(msg, tt.want) {
				t.Errorf("diagnostic %q does not contain %q", msg, tt.want)
			}
			if d.Subject == nil || d.Subject.Start.Line != 4 {
				t.Errorf("diagnostic at %v, want line 4", d.Subject)
			}
		})
	}
}

// newSocketDir is a socket directory as the engine makes one. Not
// t.TempDir(): its parent is private to the host, and the plugin's user must
// traverse to its socket.
func newSocketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "eventhost-plugins-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestMain lets the test binary serve as the sandbox launcher (start runs
// /proc/self/exe, which in a test is this binary), and removes the test
// binaries testbin built.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.LauncherArg {
		sandbox.LauncherMain(os.Args)
	}
	os.Exit(testbin.Main(m))
}
