package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
)

// These tests check least privilege as a user meets it: allow_keys narrowing
// what a plugin may write, Redis over TLS only, and secrets that stay out of
// the logs and out of the plugins' environment.

// forbiddenEvent is the event whose sales:<event> key allow_keys leaves out
// in TestPrivilegeAllowKeys.
const forbiddenEvent = "Judo: Men's -73kg Final"

// TestPrivilegeAllowKeys runs events-summary with allow_keys listing every
// key it writes but sales:<forbiddenEvent>. Each order of that event must be
// dead-lettered for events-summary with a reason naming the key and the
// patterns, counted, and none of that order's events-summary effects may
// land (not even its allowed sales_summary increments); everything else is
// exactly the tutorial's state.
func TestPrivilegeAllowKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	allow := []string{"sales_summary"}
	for _, e := range publish.Events() {
		if e != forbiddenEvent {
			allow = append(allow, "sales:"+e)
		}
	}
	if len(allow) != len(publish.Events()) {
		t.Fatalf("the generator has no event %q", forbiddenEvent)
	}
	base := writeConfig(t, srv, "u8", metricsBlock)
	cfg := replaceInConfig(t, base, `plugin "events-summary" {}`,
		fmt.Sprintf("plugin \"events-summary\" {\n  allow_keys = %s\n}", hclList(allow)))
	h := startHost(t, rdb, cfg)
	metricsAddr := h.metricsAddr(t)

	published, err := publish.NewPublisher(rdb, channel, orderPrefix).PublishMany(ctx, publish.NewGenerator(4040), 900, 0, nil)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	var allowed, forbidden []publish.Order
	for _, o := range published {
		if o.Event == forbiddenEvent {
			forbidden = append(forbidden, o)
		} else {
			allowed = append(allowed, o)
		}
	}
	if len(forbidden) == 0 || len(allowed) == 0 {
		t.Fatalf("%d of %d orders are for %q: the test needs some of each", len(forbidden), len(published), forbiddenEvent)
	}
	others := []string{"sales-histogram", "customer-invoices"}
	waitApplied(t, rdb, ids(allowed), bundled, 60*time.Second)
	waitApplied(t, rdb, ids(forbidden), others, 60*time.Second)
	waitFor(t, 30*time.Second, fmt.Sprintf("%d dead letters", len(forbidden)), func() bool {
		n, _ := rdb.XLen(ctx, deadLetterStream).Result()
		return int(n) >= len(forbidden)
	})
	checkMetric(t, metricsAddr, `eventhost_orders_dead_lettered_total{channel="purchase_orders",plugin="events-summary",reason="refused effect"}`, float64(len(forbidden)))
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}

	// The dead letters: exactly one per forbidden order, naming the key and
	// both pattern sets.
	letters, err := deadletter.List(ctx, rdb, deadLetterStream, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	wantReason := fmt.Sprintf("refused effect: plugin events-summary: SADD sales:%s: key is outside the block's allow_keys %q (the plugin declares %q)",
		forbiddenEvent, allow, []string{"sales_summary", "sales:*"})
	var gotIDs []string
	for _, e := range letters {
		gotIDs = append(gotIDs, e.OrderID)
		if e.Plugin != "events-summary" || e.Channel != channel || e.Attempts != 1 || e.Reason != wantReason {
			t.Errorf("dead letter %+v\nwant plugin events-summary, channel %s, attempts 1, reason\n  %s", e, channel, wantReason)
			break
		}
	}
	wantIDs := ids(forbidden)
	sort.Strings(gotIDs)
	sort.Strings(wantIDs)
	if strings.Join(gotIDs, ",") != strings.Join(wantIDs, ",") {
		t.Errorf("%d dead letters, want %d:\n%s", len(gotIDs), len(wantIDs), idSetDiff(gotIDs, wantIDs))
	}

	checkOrderHashes(t, rdb, allowed, bundled)
	checkOrderHashes(t, rdb, forbidden, others, keyspace.DeadField("events-summary"))

	// The state: the tutorial's for every order, except that events-summary's
	// keys hold only the allowed orders.
	all := replayed(t, srv, 1, published)
	kept := replayed(t, srv, 2, allowed)
	want := map[string]value{}
	for k, v := range all {
		if !isSummaryKey(k) {
			want[k] = v
		}
	}
	for k, v := range kept {
		if isSummaryKey(k) {
			want[k] = v
		}
	}
	got := dump(t, rdb, "")
	takeRegistry(t, got, bundled...)
	for k := range got {
		if strings.HasPrefix(k, orderPrefix) || k == deadLetterStream {
			delete(got, k)
		}
	}
	if _, ok := got["sales:"+forbiddenEvent]; ok {
		t.Errorf("key %q exists, though allow_keys forbids it", "sales:"+forbiddenEvent)
	}
	if strings.Contains(got["sales_summary"].Data, forbiddenEvent) {
		t.Errorf("sales_summary holds fields of %q, whose effect sets were refused", forbiddenEvent)
	}
	diffState(t, got, want)
}

// TestPrivilegeAllowKeysValidate: an allow_keys pattern that none of the
// plugin's declared patterns can match is a config error at its line, for
// validate and run alike (exit 2), before any order is touched.
func TestPrivilegeAllowKeysValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	srv := redistest.Start(t)
	base := writeConfig(t, srv, "u8", "")
	cfg := replaceInConfig(t, base, `plugin "events-summary" {}`,
		"plugin \"events-summary\" {\n  allow_keys = [\"sales:*\", \"sales_sumary\"]\n}")
	src, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	line := 0
	for i, l := range strings.Split(string(src), "\n") {
		if strings.Contains(l, "allow_keys") {
			line = i + 1
		}
	}
	want := fmt.Sprintf(`%s:%d,3-43: allow_keys pattern matches no declared key; Plugin "events-summary" declares the key patterns ["sales_summary" "sales:*"]; allow_keys ["sales_sumary"] can never match one of them`, cfg, line)
	for _, cmd := range []string{"validate", "run"} {
		res := runEventhost(t, 30*time.Second, nil, cmd, "-config", cfg)
		if res.code != 2 {
			t.Errorf("eventhost %s exited %d, want 2\nstderr:\n%s", cmd, res.code, res.stderr)
		}
		if !strings.Contains(res.stderr, want) {
			t.Errorf("eventhost %s: stderr does not contain\n  %s\nstderr:\n%s", cmd, want, res.stderr)
		}
	}
	if n, _ := srv.Client().DBSize(context.Background()).Result(); n != 0 {
		t.Errorf("Redis holds %d keys after runs that must not start", n)
	}
}

// TestPrivilegeRedisTLS runs the host against a redis-server that speaks only
// TLS and wants a client certificate, with a password from env(): orders are
// processed exactly as over plain TCP, and the password shows up neither in
// the host's output nor in a plugin's environment. A CA that did not sign
// the server's certificate, or a client certificate the server's CA did not
// sign, stops the host at once with exit 1 and says why.
func TestPrivilegeRedisTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	const secret = "tls-pw-4d1f9c-never-logged"
	srv, certs := redistest.StartTLS(t)
	ctx := context.Background()
	if err := srv.Client().ConfigSet(ctx, "requirepass", secret).Err(); err != nil {
		t.Fatalf("config set requirepass: %v", err)
	}
	opt := *srv.Client().Options()
	opt.Password = secret
	admin := redis.NewClient(&opt)
	t.Cleanup(func() { _ = admin.Close() })
	t.Setenv("EVENTHOST_TEST_TLS_PW", secret)
	base := writeConfig(t, srv, "u8", "")
	tlsConfig := func(ca, cert, key string) string {
		t.Helper()
		return withRedisBlock(t, base, srv.Addr, fmt.Sprintf(
			"password = env(\"EVENTHOST_TEST_TLS_PW\")\n  tls {\n    ca_file = %q\n    cert_file = %q\n    key_file = %q\n  }", ca, cert, key))
	}

	t.Run("orders over TLS", func(t *testing.T) {
		h := startHost(t, admin, tlsConfig(certs.CAFile, certs.ClientCert, certs.ClientKey))
		published, err := publish.NewPublisher(admin, channel, orderPrefix).PublishMany(ctx, publish.NewGenerator(5050), 500, 0, nil)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		waitApplied(t, admin, ids(published), bundled, 60*time.Second)
		children := pluginChildren(t, h.cmd.Process.Pid)
		if len(children) != len(bundled) {
			t.Errorf("host runs %d plugin processes, want %d", len(children), len(bundled))
		}
		for _, pid := range children {
			environ, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
			if err != nil {
				t.Fatalf("read plugin environment: %v", err)
			}
			if strings.Contains(string(environ), secret) || strings.Contains(string(environ), "EVENTHOST_TEST_TLS_PW") {
				t.Errorf("plugin process %d has the Redis password in its environment", pid)
			}
		}
		if code := h.stop(t); code != 0 {
			t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
		}
		if out := h.log.String(); strings.Contains(out, secret) {
			t.Errorf("the host's output shows the Redis password:\n%s", tail(out, 40))
		}
		if !strings.Contains(h.log.String(), "tls true") {
			t.Errorf("the host does not say it connected with TLS")
		}
		checkOrderHashes(t, admin, published, bundled)
		checkNoDeadLetters(t, admin)
		checkTutorialState(t, admin, published)
	})

	other := redistest.NewCerts(t)
	for _, tc := range []struct {
		name          string
		ca, cert, key string
		want          string
	}{
		{"wrong CA", other.CAFile, certs.ClientCert, certs.ClientKey, "x509: certificate signed by unknown authority"},
		{"client certificate of another CA", certs.CAFile, other.ClientCert, other.ClientKey, "remote error: tls: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res := runEventhost(t, 30*time.Second, nil, "run", "-config", tlsConfig(tc.ca, tc.cert, tc.key))
			if res.code != 1 {
				t.Errorf("eventhost run exited %d, want 1\nstderr:\n%s", res.code, res.stderr)
			}
			wantErr := fmt.Sprintf("connect to redis://%s/0 (user \"\", tls true): ", srv.Addr)
			if !strings.Contains(res.stderr, wantErr) || !strings.Contains(res.stderr, tc.want) {
				t.Errorf("stderr does not say %q … %q:\n%s", wantErr, tc.want, res.stderr)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("eventhost took %s to give up; a certificate error must end it at once", took)
			}
			if strings.Contains(res.stdout+res.stderr, secret) {
				t.Errorf("the host's output shows the Redis password:\n%s", res.stderr)
			}
		})
	}
}

// hclList writes ss as an HCL list of strings.
func hclList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// replayed replays the tutorial's listeners over os in database db of srv
// (emptied first) and returns the state they leave.
func replayed(t *testing.T, srv *redistest.Server, db int, os []publish.Order) map[string]value {
	t.Helper()
	opt := *srv.Client().Options()
	opt.DB = db
	ref := redis.NewClient(&opt)
	defer ref.Close()
	if err := ref.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	replayTutorial(t, ref, os, "u8")
	return dump(t, ref, "")
}

// isSummaryKey reports whether events-summary writes key.
func isSummaryKey(key string) bool {
	return key == "sales_summary" || strings.HasPrefix(key, "sales:")
}
