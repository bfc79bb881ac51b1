package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/publish"
)

// The dashboard, driven in a real headless Chromium against a real host:
// the page's numbers must become the ones Redis holds, a plugin dropped in
// by a reload must appear, and a paused host must say why, all without
// reloading the page.

// dashboardLine is what the host logs once its dashboard is bound.
var dashboardLine = regexp.MustCompile(`dashboard listening: address=(\S+)`)

// dashboardAddr waits until the host logged its dashboard's address.
func (h *host) dashboardAddr(t *testing.T) string {
	t.Helper()
	var addr string
	waitFor(t, 30*time.Second, "the host to log its dashboard address", func() bool {
		if m := dashboardLine.FindStringSubmatch(h.log.String()); m != nil {
			addr = m[1]
			return true
		}
		if h.exited() {
			t.Fatalf("eventhost exited before it bound its dashboard; its log ends:\n%s", tail(h.log.String(), 20))
		}
		return false
	})
	return addr
}

// startBrowser starts headless Chromium with a fresh profile, and returns a
// context for driving one tab of it. It is closed when the test ends.
// Without chromium the test is skipped, except in CI (.ci/run installs it).
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed; .ci/run should have installed it")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// evalPage evaluates js in the page and decodes its result into T.
func evalPage[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitPage polls the page until js's result equals want, and fails
// showing both when it does not in time.
func waitPage[T any](t *testing.T, ctx context.Context, what, js string, want T) {
	t.Helper()
	var got T
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = evalPage[T](t, ctx, js)
		if reflect.DeepEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page's %s did not become what Redis holds within 30s:\n got  %v\n want %v", what, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// What the page shows, read from its DOM.
const (
	jsOverall = `[...document.querySelectorAll('section[data-plugin="sales-histogram"][data-view="0"] .bar')].map(b => Number(b.dataset.value))`
	jsEvents  = `Object.fromEntries([...document.querySelectorAll('section[data-plugin="sales-histogram"][data-view="1"] [data-series]')].map(s => [s.dataset.series, Number(s.dataset.total)]))`
	jsTotals  = `Object.fromEntries([...document.querySelectorAll('section[data-plugin="events-summary"] tr[data-row]')].map(r => [r.dataset.row, [...r.querySelectorAll('td.num')].map(c => c.textContent)]))`
	jsTop     = `[...document.querySelectorAll('section[data-plugin="top-customers"] tr[data-row]')].map(r => r.dataset.row + "=" + r.querySelector('td[data-column]').textContent)`
	jsPaused  = `[document.getElementById("health").dataset.paused, document.getElementById("paused").hidden ? "" : document.getElementById("paused").textContent]`
)

// redisHours is the 24 u32 counters of a histogram key, as Redis itself
// decodes them (BITFIELD GET), starting at slot 1 as the plugin lays them.
func redisHours(t *testing.T, rdb *redis.Client, key string) []int64 {
	t.Helper()
	args := []any{"BITFIELD", key}
	for h := range 24 {
		args = append(args, "GET", "u32", (h+1)*32)
	}
	vals, err := rdb.Do(context.Background(), args...).Int64Slice()
	if err != nil {
		t.Fatalf("BITFIELD GET %s: %v", key, err)
	}
	return vals
}

// redisEventTotals is each event's histogram total, from Redis.
func redisEventTotals(t *testing.T, rdb *redis.Client) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for k := range dump(t, rdb, "sales_histogram:time_of_day:*") {
		var sum int64
		for _, v := range redisHours(t, rdb, k) {
			sum += v
		}
		out[strings.TrimPrefix(k, "sales_histogram:time_of_day:")] = sum
	}
	return out
}

// redisTotals is the totals table as sales_summary holds it, formatted as
// the events-summary view declares (tickets whole, sales to the cent), with
// the TOTAL row.
func redisTotals(t *testing.T, rdb *redis.Client) map[string][]string {
	t.Helper()
	fields, err := rdb.HGetAll(context.Background(), "sales_summary").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var tickets, sales float64
	for f, v := range fields {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("sales_summary %s = %q", f, v)
		}
		if event, ok := strings.CutSuffix(f, ":total_tickets_sold"); ok {
			row := append(out[event], "", "")[:2]
			row[0] = strconv.FormatFloat(x, 'f', 0, 64)
			out[event] = row
			tickets += x
		} else if event, ok := strings.CutSuffix(f, ":total_sales"); ok {
			row := append(out[event], "", "")[:2]
			row[1] = strconv.FormatFloat(x, 'f', 2, 64)
			out[event] = row
			sales += x
		}
	}
	out["TOTAL"] = []string{strconv.FormatFloat(tickets, 'f', 0, 64), strconv.FormatFloat(sales, 'f', 2, 64)}
	return out
}

// redisTop is the top ten of the leaderboard as "member=score", scores by
// qty (whole tickets).
func redisTop(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	zs, err := rdb.ZRevRangeWithScores(context.Background(), "top_customers", 0, 9).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, z := range zs {
		out = append(out, fmt.Sprintf("%s=%s", z.Member, strconv.FormatFloat(z.Score, 'f', 0, 64)))
	}
	return out
}

func TestDashboardInBrowser(t *testing.T) {
	s := newReloadSetup(t)
	ctx := startBrowser(t)
	s.write(t, s.config(t, "ui {\n  listen = \"127.0.0.1:0\"\n  refresh = \"200ms\"\n}\n"))
	h := startHost(t, s.rdb, s.path)
	url := "http://" + h.dashboardAddr(t) + "/"

	// A phone-sized screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(url),
		chromedp.WaitVisible(`section[data-plugin="events-summary"]`)); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	// Gone if the page is ever reloaded: every change below must arrive live.
	evalPage[chromedp.Void](t, ctx, `window.sameLoad = true`)
	waitPage(t, ctx, "overall histogram", jsOverall, make([]int64, 24))
	if got := evalPage[string](t, ctx, `document.getElementById("ready").textContent`); got != "ready" {
		t.Errorf("health says %q, want ready", got)
	}

	pub := publish.NewPublisher(s.rdb, channel, orderPrefix)
	gen := publish.NewGenerator(2024)
	check := func(stage string) {
		t.Helper()
		waitPage(t, ctx, stage+": overall histogram", jsOverall, redisHours(t, s.rdb, "sales_histogram:time_of_day"))
		waitPage(t, ctx, stage+": per-event totals", jsEvents, redisEventTotals(t, s.rdb))
		waitPage(t, ctx, stage+": totals table", jsTotals, redisTotals(t, s.rdb))
	}
	var all []publish.Order
	for _, n := range []int{150, 60} {
		batch, err := pub.PublishMany(context.Background(), gen, n, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, batch...)
		waitApplied(t, s.rdb, ids(all), bundled, 30*time.Second)
		check(fmt.Sprintf("after %d orders", len(all)))
	}
	if sum := evalPage[int](t, ctx, `document.querySelectorAll('section[data-plugin="sales-histogram"][data-view="0"] .bar').length`); sum != 24 {
		t.Errorf("overall histogram has %d bars, want 24", sum)
	}

	// A plugin dropped in by a reload shows up, and its leaderboard follows
	// the orders it processes.
	if got := evalPage[int](t, ctx, `document.querySelectorAll('section[data-plugin="top-customers"]').length`); got != 0 {
		t.Fatalf("top-customers shown before it was added")
	}
	s.installTop(t)
	s.write(t, s.config(t, "ui {\n  listen = \"127.0.0.1:0\"\n  refresh = \"200ms\"\n}\n"+topBlock("", "")))
	if v := h.reload(t); !strings.Contains(v, "reload applied") {
		t.Fatalf("reload: %s", v)
	}
	more, err := pub.PublishMany(context.Background(), gen, 80, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, more...)
	waitApplied(t, s.rdb, ids(more), withTop, 30*time.Second)
	if top := redisTop(t, s.rdb); len(top) != 10 {
		t.Fatalf("top_customers holds %v, want ten leaders at least", top)
	}
	waitPage(t, ctx, "top customers", jsTop, redisTop(t, s.rdb))
	check("after the reload")
	shot(t, ctx, "dashboard-phone.png")

	// Redis out of memory: the host pauses, and the page says why. The
	// order is stored first: the producer's HSET would be refused too.
	blocked := gen.Next()
	if err := s.rdb.HSet(context.Background(), orderPrefix+blocked.ID, blocked.Fields()...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.ConfigSet(context.Background(), "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.rdb.ConfigSet(context.Background(), "maxmemory", "0") })
	if err := s.rdb.Publish(context.Background(), channel, blocked.ID).Err(); err != nil {
		t.Fatal(err)
	}
	const reason = "redis out of memory (OOM)"
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := evalPage[[]string](t, ctx, jsPaused)
		if strings.HasPrefix(p[0], reason) && strings.HasPrefix(p[1], "Paused: "+reason) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page does not say the host is paused for %q: %q", reason, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := evalPage[string](t, ctx, `document.getElementById("ready").textContent`); got != "not ready" {
		t.Errorf("paused host: health says %q, want not ready", got)
	}
	shot(t, ctx, "dashboard-paused.png")

	// Memory back: the pause ends, on the page too, and the held order counts.
	if err := s.rdb.ConfigSet(context.Background(), "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, s.rdb, []string{blocked.ID}, withTop, 30*time.Second)
	waitPage(t, ctx, "pause banner", jsPaused, []string{"", ""})
	check("after the pause")
	if !evalPage[bool](t, ctx, `window.sameLoad === true`) {
		t.Error("the page was reloaded: updates must arrive live")
	}
	if n := evalPage[string](t, ctx, `document.body.dataset.updates`); n == "" || n == "1" {
		t.Errorf("the page took %q updates, want many", n)
	}
}

// shot saves a full-page screenshot under the test's temp dir (and under
// $EVENTHOST_SCREENSHOTS, when set, to keep it) and prints its path.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("EVENTHOST_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		path := filepath.Join(d, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
}
