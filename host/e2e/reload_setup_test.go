package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/internal/testplugins/topcustomers"
	"github.com/eventhost/eventhost/host/publish"
)

// A host whose config file and private plugin_dir a test rewrites between
// reloads (SIGHUP), with top-customers
// (host/internal/testplugins/topcustomers) as the plugin dropped in.

const top = topcustomers.Name

// configOrder is the bundled plugins in writeConfig's order, the order the
// reload verdict lists them in; the shared bundled may be sorted in place
// by a parallel test's takeRegistry.
var configOrder = []string{"sales-histogram", "events-summary", "customer-invoices"}

var withTop = append([]string{top}, configOrder...)

// reloadSetup is a redis-server, a private plugin_dir holding copies of the
// bundled plugins, and a config file the test rewrites between reloads.
type reloadSetup struct {
	srv  *redistest.Server
	rdb  *redis.Client
	dir  string // plugin_dir
	path string // the config file
}

func newReloadSetup(t *testing.T) *reloadSetup {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	srv := redistest.Start(t)
	s := &reloadSetup{srv: srv, rdb: srv.Client(), dir: filepath.Join(t.TempDir(), "plugins")}
	s.path = filepath.Join(filepath.Dir(s.dir), "eventhost.hcl")
	if err := os.Mkdir(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range configOrder {
		s.install(t, p, filepath.Join(testbin.PluginDir(t), "eventhost-plugin-"+p))
	}
	return s
}

// install copies the binary at src into plugin_dir as plugin name, the way
// an operator should: under a temporary name, then renamed into place.
// trailer, when given, is appended: another binary that runs the same.
func (s *reloadSetup) install(t *testing.T, name, src string, trailer ...string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(s.dir, ".install-")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(tmp, in); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tmp, strings.Join(trailer, "")); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, "eventhost-plugin-"+name)); err != nil {
		t.Fatal(err)
	}
}

// installTop builds the fixture and drops it into plugin_dir.
func (s *reloadSetup) installTop(t *testing.T, trailer ...string) {
	t.Helper()
	s.install(t, top, testbin.Build(t, "./host/internal/testplugins/topcustomers/cmd/eventhost-plugin-"+top, "eventhost-plugin-"+top), trailer...)
}

// config is writeConfig's config (u32 counters, extra blocks added) with
// plugin_dir pointing at the private one.
func (s *reloadSetup) config(t *testing.T, extra string) string {
	t.Helper()
	src, err := os.ReadFile(writeConfig(t, s.srv, "u32", extra))
	if err != nil {
		t.Fatal(err)
	}
	from, to := fmt.Sprintf("plugin_dir = %q", testbin.PluginDir(t)), fmt.Sprintf("plugin_dir = %q", s.dir)
	if !strings.Contains(string(src), from) {
		t.Fatalf("writeConfig's config has no %s line", from)
	}
	return strings.Replace(string(src), from, to, 1)
}

// write replaces the config file with content, atomically.
func (s *reloadSetup) write(t *testing.T, content string) {
	t.Helper()
	tmp := s.path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		t.Fatal(err)
	}
}

// topBlock is the fixture's plugin block: attrs inside it, conf inside its
// config block, scoring by qty.
func topBlock(attrs, conf string) string {
	return fmt.Sprintf("plugin %q {\n%s\n  config {\n    score = \"qty\"\n%s\n  }\n}\n", top, attrs, conf)
}

// checkBundled checks, once the host has stopped, that the bundled plugins'
// keys are exactly what the tutorial's listeners leave for os (with u32
// counters), and that the plugin registry lists registered. Order hashes and
// the fixture's keys are left out; adjust, when set, edits the expected
// state first.
func (s *reloadSetup) checkBundled(t *testing.T, os []publish.Order, registered []string, adjust func(want map[string]value)) {
	t.Helper()
	ref := redis.NewClient(&redis.Options{Addr: s.srv.Addr, DB: 1})
	defer ref.Close()
	if err := ref.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	replayTutorial(t, ref, os, "u32")
	want := dump(t, ref, "")
	if adjust != nil {
		adjust(want)
	}
	got := dump(t, s.rdb, "")
	takeRegistry(t, got, append([]string(nil), registered...)...) // it sorts what it is given
	for k := range got {
		if strings.HasPrefix(k, orderPrefix) || strings.HasPrefix(k, topcustomers.DefaultKey) {
			delete(got, k)
		}
	}
	diffState(t, got, want)
}

// reload sends SIGHUP and returns the host's verdict on it: the next log
// line saying "reload applied" or "reload rejected".
func (h *host) reload(t *testing.T) string {
	t.Helper()
	before := len(reloadVerdicts(h.log.String()))
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var lines []string
	waitFor(t, 60*time.Second, "the host to apply or reject the reload", func() bool {
		lines = reloadVerdicts(h.log.String())
		return len(lines) > before
	})
	return lines[before]
}

func reloadVerdicts(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "reload applied") || strings.Contains(line, "reload rejected") {
			out = append(out, line)
		}
	}
	return out
}
