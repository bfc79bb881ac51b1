package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
)

// The hostile fixture plugin's attempts (host/internal/testplugins/hostile);
// every one must be refused. write_tmpdir is the control: it must work.
var hostileAttempts = []string{
	"read_host_environ", "read_host_mem", "read_config", "read_env_file", "read_secret",
	"list_plugin_dir", "write_beside_binary", "connect_redis_tcp", "bind_tcp_port", "bind_udp_port",
	"exec_sh", "setuid_root", "signal_host",
}

const sandboxPassword = "sandbox-pw-7c21e9-never-seen"

// sandboxSetup is a redis-server with requirepass, and a config for the
// hostile plugin with the password from env(), the username from file(),
// and an env file like the shipped one. Config, env file and secret are
// world-readable in a world-readable directory, so file permissions alone
// would not keep a plugin out: what refuses it is the sandbox.
type sandboxSetup struct {
	srv    *redistest.Server
	admin  *redis.Client
	config string
	env    []string
}

func newSandboxSetup(t *testing.T, extra string, refuse bool) sandboxSetup {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the sandbox tests run as root, like CI: plugins then run as another user")
	}
	srv := redistest.Start(t, "--requirepass", sandboxPassword)
	opt := *srv.Client().Options()
	opt.Password = sandboxPassword
	admin := redis.NewClient(&opt)
	t.Cleanup(func() { _ = admin.Close() })

	dir, err := os.MkdirTemp("", "eventhost-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	envFile := write("eventhost.env", "EVENTHOST_REDIS_PASSWORD="+sandboxPassword+"\n")
	secret := write("redis-username", "default\n")
	bin := testbin.Build(t, "./host/internal/testplugins/hostile", "eventhost-plugin-hostile")
	path := filepath.Join(dir, "config.hcl")
	write("config.hcl", fmt.Sprintf(`
redis {
  address  = %q
  username = file("redis-username")
  password = env("EVENTHOST_REDIS_PASSWORD")
}
source "pubsub" { channels = [%q] }
log { level = "debug" }
%s
plugin "hostile" {
  path = %q
  config {
    config_file       = %q
    env_file          = %q
    secret_file       = %q
    redis_addr        = %q
    plugin_dir        = %q
    refuse_if_escaped = %v
  }
}
`, srv.Addr, channel, extra, bin, path, envFile, secret, srv.Addr, testbin.PluginDir(t), refuse))
	return sandboxSetup{srv: srv, admin: admin, config: path, env: []string{"EVENTHOST_REDIS_PASSWORD=" + sandboxPassword}}
}

// TestSandboxHostilePlugin runs the hostile plugin, which tries every escape
// at start and on each order: reading the host's environment and memory,
// the config, the env file, a file() secret, listing the plugins'
// directory, writing beside its binary, TCP to Redis, binding TCP and UDP
// ports, running /bin/sh, setuid(0), signalling the host. Every attempt must
// be refused, its own TMPDIR writable, its orders processed exactly, every
// protection reported available, and the Redis password nowhere in Redis,
// the host's log or validate's output. validate launches it in the same
// sandbox: the plugin fails its config there if any escape worked.
func TestSandboxHostilePlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	ctx := context.Background()
	s := newSandboxSetup(t, metricsBlock+"sandbox { require = true }", true)

	res := runEventhost(t, 60*time.Second, s.env, "validate", "-config", s.config)
	if res.code != 0 || !strings.Contains(res.stdout, "plugin hostile 0.0.0-test: ok") {
		t.Errorf("eventhost validate exited %d, want 0 and the hostile plugin ok\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "sandbox: plugins run as nobody") {
		t.Errorf("validate does not say plugins run as nobody:\n%s", res.stdout)
	}
	if strings.Contains(res.stdout+res.stderr, sandboxPassword) {
		t.Errorf("validate's output shows the Redis password")
	}

	h := startHostEnv(t, s.admin, s.config, s.env)
	metricsAddr := h.metricsAddr(t)
	published, err := publish.NewPublisher(s.admin, channel, orderPrefix).PublishMany(ctx, publish.NewGenerator(9090), 30, 0, nil)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitApplied(t, s.admin, ids(published), []string{"hostile"}, 60*time.Second)
	for _, name := range []string{"identity", "host_not_dumpable", "no_new_privs", "parent_death_signal", "landlock_fs", "landlock_tcp", "landlock_scope", "socket_filter"} {
		checkMetric(t, metricsAddr, fmt.Sprintf(`eventhost_sandbox_protection{name=%q}`, name), 1)
	}
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}

	var want []string
	for _, phase := range []string{"start", "order"} {
		for _, a := range hostileAttempts {
			want = append(want, phase+" "+a+" refused")
		}
		want = append(want, phase+" write_tmpdir ok")
	}
	sort.Strings(want)
	got, err := s.admin.SMembers(ctx, "hostile:results").Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		why, _ := s.admin.HGetAll(ctx, "hostile:errors").Result()
		t.Errorf("hostile:results =\n  %s\nwant\n  %s\nerrors: %q", strings.Join(got, "\n  "), strings.Join(want, "\n  "), why)
	}
	orders, err := s.admin.SMembers(ctx, "hostile:orders").Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(orders)
	wantOrders := ids(published)
	sort.Strings(wantOrders)
	if strings.Join(orders, ",") != strings.Join(wantOrders, ",") {
		t.Errorf("hostile:orders holds %d orders, want the %d published:\n%s", len(orders), len(wantOrders), idSetDiff(orders, wantOrders))
	}
	state := dump(t, s.admin, "")
	for k, v := range state {
		if strings.Contains(k, sandboxPassword) || strings.Contains(v.Data, sandboxPassword) {
			t.Errorf("key %q holds the Redis password", k)
		}
		if !strings.HasPrefix(k, orderPrefix) && !strings.HasPrefix(k, "hostile:") && k != keyspace.RegistryKey {
			t.Errorf("unexpected key %q (%s)", k, v.Type)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(testbin.Build(t, "./host/internal/testplugins/hostile", "eventhost-plugin-hostile")), "hostile-was-here")); err == nil {
		t.Errorf("the hostile plugin wrote beside its binary")
	}
	if strings.Contains(h.log.String(), sandboxPassword) {
		t.Errorf("the host's log shows the Redis password")
	}
}

// TestSandboxDegraded runs with Landlock simulated missing (the test-only
// EVENTHOST_SANDBOX_SIMULATE_MISSING): run warns about each missing
// protection and exports it as 0, the plugin still works (and now reads
// the config: Landlock is what stopped it), validate names what is
// missing, and sandbox { require = true } refuses to start, naming it.
func TestSandboxDegraded(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	ctx := context.Background()
	missing := []string{"landlock_fs", "landlock_tcp", "landlock_scope"}
	simulate := "EVENTHOST_SANDBOX_SIMULATE_MISSING=" + strings.Join(missing, ",")

	t.Run("warn", func(t *testing.T) {
		s := newSandboxSetup(t, metricsBlock, false)
		h := startHostEnv(t, s.admin, s.config, append(s.env, simulate))
		metricsAddr := h.metricsAddr(t)
		for _, name := range missing {
			line := fmt.Sprintf(`[WARN]  eventhost: plugin sandbox protection unavailable: protection=%s why="simulated by EVENTHOST_SANDBOX_SIMULATE_MISSING"`, name)
			if !strings.Contains(h.log.String(), line) {
				t.Errorf("the host's log lacks %q", line)
			}
			checkMetric(t, metricsAddr, fmt.Sprintf(`eventhost_sandbox_protection{name=%q}`, name), 0)
		}
		checkMetric(t, metricsAddr, `eventhost_sandbox_protection{name="identity"}`, 1)
		checkMetric(t, metricsAddr, `eventhost_sandbox_protection{name="socket_filter"}`, 1)
		published, err := publish.NewPublisher(s.admin, channel, orderPrefix).PublishMany(ctx, publish.NewGenerator(9191), 5, 0, nil)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		waitApplied(t, s.admin, ids(published), []string{"hostile"}, 60*time.Second)
		if code := h.stop(t); code != 0 {
			t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
		}
		results, _ := s.admin.SMembers(ctx, "hostile:results").Result()
		for _, r := range []string{"order read_config ESCAPED", "order connect_redis_tcp refused", "order setuid_root refused"} {
			if !contains(results, r) {
				t.Errorf("hostile:results lacks %q without Landlock: %q", r, results)
			}
		}
	})

	t.Run("validate", func(t *testing.T) {
		s := newSandboxSetup(t, "", true)
		res := runEventhost(t, 60*time.Second, append(s.env, simulate), "validate", "-config", s.config)
		for _, name := range missing {
			line := fmt.Sprintf("sandbox: %s: MISSING: simulated by EVENTHOST_SANDBOX_SIMULATE_MISSING", name)
			if !strings.Contains(res.stdout, line) {
				t.Errorf("validate's output lacks %q:\n%s", line, res.stdout)
			}
		}
		// The plugin was launched in the (degraded) sandbox and says what
		// it could reach.
		if res.code != 2 || !strings.Contains(res.stderr, "escaped the sandbox: ") || !strings.Contains(res.stderr, "read_config") {
			t.Errorf("validate exited %d, want 2 with the hostile plugin refusing its config\nstderr:\n%s", res.code, res.stderr)
		}
	})

	t.Run("require", func(t *testing.T) {
		s := newSandboxSetup(t, "sandbox {\n  require = true\n}", false)
		for _, cmd := range []string{"run", "validate"} {
			res := runEventhost(t, 60*time.Second, append(s.env, simulate), cmd, "-config", s.config)
			want := "sandbox { require = true }, but this host cannot provide 3 plugin protection(s): landlock_fs (simulated by EVENTHOST_SANDBOX_SIMULATE_MISSING); landlock_tcp"
			if res.code != 2 || !strings.Contains(res.stderr, want) {
				t.Errorf("eventhost %s exited %d, want 2 saying %q\nstderr:\n%s", cmd, res.code, want, res.stderr)
			}
		}
		if n, _ := s.admin.DBSize(ctx).Result(); n != 0 {
			t.Errorf("Redis holds %d keys after a refused start, want none", n)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
