package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/host/internal/testbin"
)

// TestSystemdInstall runs `make install` into a temporary DESTDIR, with the
// default PREFIX and another, and checks what it lays down: paths, modes, the
// unit's settings, the unit with systemd-analyze verify, the sysusers.d entry
// with systemd-sysusers, and the installed config with the installed binary
// and plugins. A second install must keep the admin's config and secrets.
func TestSystemdInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	for _, prefix := range []string{"", "/opt/eventhost"} {
		name := "PREFIX=" + prefix
		if prefix == "" {
			name, prefix = "default PREFIX", "/usr/local"
		}
		t.Run(name, func(t *testing.T) {
			dest := t.TempDir()
			makeInstall(t, dest, prefix)
			checkInstalled(t, dest, prefix)

			// The admin's edits survive a reinstall, and so does the mode.
			conf := filepath.Join(dest, "etc/eventhost/config.hcl")
			env := filepath.Join(dest, "etc/eventhost/eventhost.env")
			for _, p := range []string{conf, env} {
				if err := os.WriteFile(p, []byte("# the admin's\n"), 0); err != nil {
					t.Fatal(err)
				}
			}
			makeInstall(t, dest, prefix)
			for _, p := range []string{conf, env} {
				if b, _ := os.ReadFile(p); string(b) != "# the admin's\n" {
					t.Errorf("a second make install overwrote %s", p)
				}
			}
			checkMode(t, env, 0o600)
		})
	}
}

// makeInstall runs `make install` from the repository root, with the test
// binaries (laid out as `make build` lays out bin/) as BIN.
func makeInstall(t *testing.T, dest, prefix string) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "--no-print-directory", "install", "DESTDIR="+dest, "PREFIX="+prefix, "BIN="+testbin.Dir(t))
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
}

func checkInstalled(t *testing.T, dest, prefix string) {
	t.Helper()
	unit := filepath.Join(dest, prefix, "lib/systemd/system/eventhost.service")
	files := map[string]os.FileMode{
		filepath.Join(dest, prefix, "bin/eventhost"): 0o755,
		unit: 0o644,
		filepath.Join(dest, prefix, "lib/sysusers.d/eventhost.conf"): 0o644,
		filepath.Join(dest, "etc/eventhost/config.hcl"):              0o644,
		filepath.Join(dest, "etc/eventhost/eventhost.env"):           0o600,
	}
	pluginDir := filepath.Join(dest, prefix, "lib/eventhost/plugins")
	// The three bundled plugins, and the three as one (tutorial-metrics).
	for _, p := range append(slices.Clone(bundled), "tutorial-metrics") {
		files[filepath.Join(pluginDir, "eventhost-plugin-"+p)] = 0o755
	}
	for path, mode := range files {
		checkMode(t, path, mode)
	}
	// Nothing the host runs or reads may be writable by anyone but its owner.
	err := filepath.Walk(dest, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o022 != 0 {
			t.Errorf("%s is group- or world-writable (%s)", path, info.Mode())
		}
		if _, listed := files[path]; !listed && !info.IsDir() {
			t.Errorf("make install put down %s, which this test does not know", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	text := readFile(t, unit)
	checkUnitSettings(t, text, prefix)
	problems, ran := verifyUnit(t, strings.ReplaceAll(text, "ExecStart="+prefix, "ExecStart="+filepath.Join(dest, prefix)))
	for _, p := range problems {
		t.Errorf("systemd-analyze verify: %s", p)
	}
	if ran {
		checkVerifyCatches(t, text, dest, prefix)
		checkSecurityScore(t, unit)
	}
	checkSysusers(t, filepath.Join(dest, prefix, "lib/sysusers.d/eventhost.conf"))

	// The installed config, with its plugin_dir, works with the installed
	// binary and plugins (DESTDIR stands in for /).
	conf := readFile(t, filepath.Join(dest, "etc/eventhost/config.hcl"))
	wantDir := `plugin_dir = "` + prefix + `/lib/eventhost/plugins"`
	if !strings.Contains(conf, wantDir) {
		t.Fatalf("installed config.hcl lacks %s", wantDir)
	}
	staged := filepath.Join(t.TempDir(), "config.hcl")
	if err := os.WriteFile(staged, []byte(strings.ReplaceAll(conf, wantDir, `plugin_dir = "`+pluginDir+`"`)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(dest, prefix, "bin/eventhost"), "validate", "-config", staged).CombinedOutput()
	if err != nil {
		t.Errorf("eventhost validate on the installed config: %v\n%s", err, out)
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Errorf("make install did not create %s: %v", path, err)
		return
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %04o, want %04o", path, got, want)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkUnitSettings checks what systemd-analyze verify cannot: that the unit
// says what docs/operations.md promises, and keeps its hardening.
func checkUnitSettings(t *testing.T, unit, prefix string) {
	t.Helper()
	settings := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			settings[k] = append(settings[k], v)
		}
	}
	want := map[string]string{
		"Type":                    "notify",
		"NotifyAccess":            "main",
		"ExecStart":               prefix + "/bin/eventhost run -config /etc/eventhost/config.hcl",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"EnvironmentFile":         "-/etc/eventhost/eventhost.env",
		"Restart":                 "on-failure",
		"KillMode":                "control-group",
		"WatchdogSec":             "30s",
		"User":                    "eventhost",
		"Group":                   "eventhost",
		"UMask":                   "0077",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "CAP_SETUID CAP_SETGID",
		"AmbientCapabilities":     "CAP_SETUID CAP_SETGID",
		"PrivateMounts":           "yes",
		"IPAddressDeny":           "any",
		"IPAddressAllow":          "localhost",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"SystemCallErrorNumber":   "EPERM",
		"ProtectClock":            "yes",
		"ProtectHostname":         "yes",
		"ProtectProc":             "invisible",
		"RestrictRealtime":        "yes",
		"RestrictSUIDSGID":        "yes",
		"RemoveIPC":               "yes",
		// docs/operations.md's timings: a restart 2 s after a failure, at most 5
		// starts a minute; the stop timeout leaves the 60 s drain limit
		// (daemon.DefaultDrainTimeout) room before systemd's SIGKILL.
		"RestartSec":            "2s",
		"TimeoutStartSec":       "90s",
		"TimeoutStopSec":        "2min",
		"StartLimitIntervalSec": "1min",
		"StartLimitBurst":       "5",
	}
	for k, v := range want {
		if got := settings[k]; len(got) != 1 || got[0] != v {
			t.Errorf("unit: %s=%q, want %s=%s", k, got, k, v)
		}
	}
	// The plugin sandbox's system calls, past @system-service.
	wantFilters := []string{"@system-service", "landlock_create_ruleset landlock_add_rule landlock_restrict_self", "~@resources"}
	if got := settings["SystemCallFilter"]; strings.Join(got, "|") != strings.Join(wantFilters, "|") {
		t.Errorf("unit: SystemCallFilter=%q, want %q", got, wantFilters)
	}
	for _, k := range []string{"RestartSec", "TimeoutStopSec", "StartLimitIntervalSec", "StartLimitBurst"} {
		if len(settings[k]) != 1 {
			t.Errorf("unit: %s=%q, want one value", k, settings[k])
		}
	}
}

// verifyUnit checks unit (the text of eventhost.service) with systemd-analyze
// verify and returns what it found wrong. verify exits 0 on an unknown key or
// a value it cannot parse (it only warns that it ignores them), so every line
// that names the unit counts, not only the exit code. ran is false when
// systemd-analyze is not installed.
func verifyUnit(t *testing.T, unit string) (problems []string, ran bool) {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed (.ci/run installs the systemd package): the unit is not verified")
		return nil, false
	}
	path := filepath.Join(t.TempDir(), "eventhost.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "verify", "--man=no", path).CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case line == "":
		case strings.Contains(line, "eventhost.service"):
			problems = append(problems, line)
		default:
			t.Logf("systemd-analyze verify (not about the unit): %s", line)
		}
	}
	if err != nil {
		problems = append(problems, "exited with "+err.Error())
	}
	return problems, true
}

// checkVerifyCatches makes sure verifyUnit would fail the test for a broken
// unit, so that a clean verify of the real one means something.
func checkVerifyCatches(t *testing.T, unit, dest, prefix string) {
	t.Helper()
	runnable := strings.ReplaceAll(unit, "ExecStart="+prefix, "ExecStart="+filepath.Join(dest, prefix))
	broken := []struct{ name, from, to string }{
		{"unknown key", "\nKillMode=", "\nKilMode="},
		{"bad value", "\nType=notify\n", "\nType=notfy\n"},
		{"bad section", "\n[Service]\n", "\n[Servic]\n"},
		{"missing binary", "ExecStart=" + filepath.Join(dest, prefix), "ExecStart=" + filepath.Join(dest, "nonexistent")},
	}
	for _, b := range broken {
		if !strings.Contains(runnable, b.from) {
			t.Fatalf("broken unit %q: the unit has no %q to break", b.name, b.from)
		}
		if problems, _ := verifyUnit(t, strings.Replace(runnable, b.from, b.to, 1)); len(problems) == 0 {
			t.Errorf("systemd-analyze verify found nothing wrong with a unit with a %s", b.name)
		}
	}
}

// checkSysusers dry-runs systemd-sysusers on the installed sysusers.d entry
// against an empty root: it must create the eventhost user and group.
func checkSysusers(t *testing.T, conf string) {
	t.Helper()
	bin, err := exec.LookPath("systemd-sysusers")
	if err != nil {
		t.Log("systemd-sysusers is not installed: the sysusers.d entry is not checked")
		return
	}
	out, err := exec.Command(bin, "--dry-run", "--root="+t.TempDir(), conf).CombinedOutput()
	// The host's user, and the plugins' (the sandbox's plugin_user), whose
	// group the host joins to hand each plugin its private directory.
	for _, re := range []string{`Creating user '?eventhost'? `, `Creating user '?eventhost-plugin'? `} {
		if err != nil || !regexp.MustCompile(re).Match(out) {
			t.Errorf("systemd-sysusers --dry-run %s: %v: no %s in\n%s", conf, err, re, out)
		}
	}
	// --dry-run does not say it adds members; the line must be there.
	if !regexp.MustCompile(`(?m)^m\s+eventhost\s+eventhost-plugin\s*$`).MatchString(readFile(t, conf)) {
		t.Errorf("%s does not make eventhost a member of group eventhost-plugin (m eventhost eventhost-plugin)", conf)
	}
}

// checkSecurityScore keeps the unit's systemd-analyze security exposure at
// 1.6 or below: the plugin sandbox's capabilities must be paid for.
func checkSecurityScore(t *testing.T, unit string) {
	t.Helper()
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for eventhost\.service: (\d+\.\d)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Errorf("systemd-analyze security %s: %v\n%s", unit, err, out)
		return
	}
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > 1.6 {
		t.Errorf("systemd-analyze security: exposure %s, want 1.6 or less", m[1])
	}
}
