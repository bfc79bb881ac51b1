package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/metrics"
)

// TestVersion builds eventhost as `make build` does, with the version and
// commit linked in, and checks both spellings of the command.
func TestVersion(t *testing.T) {
	testbin.Dir(t) // skips under -short; warms the build cache
	bin := filepath.Join(t.TempDir(), "eventhost")
	pkg := "github.com/eventhost/eventhost/host/version"
	build := exec.Command("go", "build", "-ldflags", "-X "+pkg+".version=v9.9.9-test -X "+pkg+".commit=c0ffee", "-o", bin, "./host/cmd/eventhost")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want := fmt.Sprintf("eventhost v9.9.9-test (commit c0ffee, %s, %s/%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for _, arg := range []string{"version", "-version", "--version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil || string(out) != want {
			t.Errorf("eventhost %s = %q, %v; want %q", arg, out, err, want)
		}
	}
}

// TestDeployRules checks deploy/: the alert rules parse and pass their unit
// tests (promtool), and every eventhost_* metric that the rules and the
// Grafana dashboard name is one a real host exports. The host's scrape also
// carries eventhost_build_info with the build `eventhost version` reports,
// and eventhost_ready agreeing with /readyz.
func TestDeployRules(t *testing.T) {
	rules := filepath.Join(repoRoot, "deploy/prometheus/eventhost-rules.yml")
	dashboard := filepath.Join(repoRoot, "deploy/grafana/eventhost.json")
	promtool, err := exec.LookPath("promtool")
	switch {
	case err == nil:
		for _, args := range [][]string{{"check", "rules", rules}, {"test", "rules", strings.TrimSuffix(rules, ".yml") + ".test.yml"}} {
			if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	case os.Getenv("CI") != "":
		t.Errorf("promtool is missing (Debian package prometheus; .ci/run installs it): %v", err)
	default:
		t.Logf("promtool is missing (apt-get install prometheus): rules not parsed, only their metric names checked")
	}

	srv := redistest.Start(t)
	rdb := srv.Client()
	h := startHost(t, rdb, writeConfig(t, srv, "u8", metricsBlock))
	addr := h.metricsAddr(t)
	waitFor(t, 60*time.Second, "/readyz to answer 200", func() bool { return httpGet(t, addr, "/readyz").code == 200 })
	scrape := httpGet(t, addr, "/metrics").body

	exported := exportedNames(t, scrape)
	var missing []string
	for _, file := range []string{rules, dashboard} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if file == dashboard {
			src = []byte(strings.Join(dashboardExprs(t, src), "\n"))
		}
		for _, name := range metricName.FindAllString(string(src), -1) {
			if !exported[name] {
				missing = append(missing, fmt.Sprintf("%s: %s", filepath.Base(file), name))
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("deploy/ names metrics that eventhost does not export:\n%s", strings.Join(dedupe(sortedCopy(missing)), "\n"))
	}

	v := runEventhost(t, time.Minute, nil, "version")
	m := regexp.MustCompile(`^eventhost (\S+) \(commit (\S+), (\S+), `).FindStringSubmatch(v.stdout)
	if m == nil {
		t.Fatalf("eventhost version printed %q", v.stdout)
	}
	wantLines := []string{
		fmt.Sprintf(`eventhost_build_info{commit=%q,goversion=%q,version=%q} 1`, m[2], m[3], m[1]),
		"eventhost_ready 1",
	}
	for _, line := range wantLines {
		if !strings.Contains("\n"+scrape, "\n"+line+"\n") {
			t.Errorf("/metrics lacks the line %q", line)
		}
	}
}

// metricName matches an eventhost metric's name in a rule or a query.
var metricName = regexp.MustCompile(`\beventhost_[a-z0-9_]+`)

// exportedNames are the eventhost_* series names a host can export: those
// in scrape (the text exposition of a running host) and those its metrics
// package declares, which include vectors that have no series yet. A
// histogram's name stands for its _bucket, _sum and _count series.
func exportedNames(t *testing.T, scrape string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	add := func(name, kind string) {
		out[name] = true
		if kind == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[name+s] = true
			}
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (eventhost_\S+) (\S+)$`).FindAllStringSubmatch(scrape, -1) {
		add(m[1], m[2])
	}
	if len(out) == 0 {
		t.Fatalf("the scrape has no eventhost_* metric:\n%s", short(scrape))
	}
	descs := make(chan *prometheus.Desc)
	go func() { metrics.New().Registry.Describe(descs); close(descs) }()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil && strings.HasPrefix(m[1], "eventhost_") {
			// A declared histogram without series shows no TYPE; its
			// name alone cannot tell, so take the suffixes too.
			add(m[1], "histogram")
		}
	}
	return out
}

// dashboardExprs returns every "expr" of the Grafana dashboard src.
func dashboardExprs(t *testing.T, src []byte) []string {
	t.Helper()
	var doc any
	if err := json.Unmarshal(src, &doc); err != nil {
		t.Fatalf("the Grafana dashboard is not JSON: %v", err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query") {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if len(out) < 10 {
		t.Fatalf("the Grafana dashboard has %d queries; it should show far more", len(out))
	}
	return out
}

type httpResult struct {
	code int
	body string
}

func httpGet(t *testing.T, addr, path string) httpResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return httpResult{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpResult{code: resp.StatusCode, body: string(b)}
}
