package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
	"github.com/eventhost/eventhost/sdk"
)

// dryRunOrder is one line of `eventhost dry-run -json`.
type dryRunOrder struct {
	OrderID     string         `json:"order_id"`
	Verdict     string         `json:"verdict"`
	Reason      string         `json:"reason"`
	AlreadyDone bool           `json:"already_done"`
	Effects     []dryRunEffect `json:"effects"`
}

type dryRunEffect struct {
	Command string   `json:"command"`
	Key     string   `json:"key"`
	Args    []string `json:"args"`
	Verdict string   `json:"verdict"`
	Reason  string   `json:"reason"`
}

// TestDryRun runs `eventhost dry-run` with real plugin processes over stored
// orders that cover every verdict, checks each order's verdict and effects
// exactly, and checks that Redis is byte for byte what it was before (DUMP
// and TTL of every key) after each run.
func TestDryRun(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	pub := publish.NewPublisher(rdb, channel, orderPrefix)
	stored, err := pub.PublishMany(ctx, publish.NewGenerator(7), 4, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// stored[1] is done for customer-invoices; stored[2]'s customer's invoice key
	// is a string, which SADD cannot write; "bad" has no qty.
	must(t, rdb.HSet(ctx, orderPrefix+stored[1].ID, keyspace.DoneField("customer-invoices"), "1").Err())
	must(t, rdb.Set(ctx, "invoices:"+stored[2].Who, "not a set", 0).Err())
	must(t, rdb.HSet(ctx, orderPrefix+"bad", "ts", "1626998400", "cost", "1", "event", "e", "who", "w").Err())
	must(t, rdb.Set(ctx, "ttl-key", "v", 0).Err())
	must(t, rdb.PExpire(ctx, "ttl-key", 1e12).Err()) // a TTL, to see it kept too
	before := snapshot(t, rdb)

	cfg := filepath.Join(t.TempDir(), "dry-run.hcl")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
redis { address = %q }
plugin_dir = %q
log { level = "warn" }
plugin "events-summary" {
  allow_keys = ["sales:*"]
}
plugin "customer-invoices" {}
`, srv.Addr, testbin.PluginDir(t))), 0o600))

	t.Run("configured plugin: apply, already done, wrong type, bad order", func(t *testing.T) {
		got := dryRunJSON(t, "-config", cfg, "-plugin", "customer-invoices", "-n", "0")
		var want []dryRunOrder
		for i, o := range stored {
			v := dryRunOrder{OrderID: o.ID, Verdict: "apply", AlreadyDone: i == 1, Effects: []dryRunEffect{
				{Command: "SADD", Key: "invoices:" + o.Who, Args: []string{o.ID}, Verdict: "ok"},
			}}
			if i == 2 {
				why := fmt.Sprintf("invoices:%s holds a string; SADD needs a set", o.Who)
				v.Verdict, v.Reason = "wrong_type", why
				v.Effects[0].Verdict, v.Effects[0].Reason = "wrong_type", why
			}
			want = append(want, v)
		}
		want = append(want, dryRunOrder{OrderID: "bad", Verdict: "bad_order", Effects: []dryRunEffect{}, // ids sort after digits
			Reason: "order hash purchase_order_details:bad: field qty is missing"})
		checkDryRun(t, got, want)
		diffState(t, snapshot(t, rdb), before)
	})

	t.Run("allow_keys refuses the order's effects", func(t *testing.T) {
		o := stored[0]
		got := dryRunJSON(t, "-config", cfg, "-plugin", "events-summary", "-id", o.ID)
		outside := func(cmd string) string {
			return fmt.Sprintf(`plugin events-summary: %s sales_summary: key is outside the block's allow_keys ["sales:*"] (the plugin declares ["sales_summary" "sales:*"])`, cmd)
		}
		want := []dryRunOrder{{OrderID: o.ID, Verdict: "refused", Reason: outside("HINCRBYFLOAT"), Effects: []dryRunEffect{
			{Command: "SADD", Key: "sales:" + o.Event, Args: []string{o.ID}, Verdict: "ok"},
			{Command: "HINCRBYFLOAT", Key: "sales_summary", Args: []string{o.Event + ":total_sales", plainDecimal(t, o.Cost)}, Verdict: "refused", Reason: outside("HINCRBYFLOAT")},
			{Command: "HINCRBY", Key: "sales_summary", Args: []string{o.Event + ":total_tickets_sold", fmt.Sprint(o.Qty)}, Verdict: "refused", Reason: outside("HINCRBY")},
		}}}
		checkDryRun(t, got, want)
		diffState(t, snapshot(t, rdb), before)
	})

	t.Run("a binary that is not configured, with an inline config", func(t *testing.T) {
		bin := testbin.Build(t, "./host/internal/testplugins/topcustomers/cmd/eventhost-plugin-top-customers", "eventhost-plugin-top-customers")
		args := []string{"-config", cfg, "-plugin", "top-customers", "-path", bin, "-plugin-config", `score = "qty"`, "-id", stored[3].ID, "-id", stored[0].ID}
		got := dryRunJSON(t, args...)
		var want []dryRunOrder
		for _, o := range []publish.Order{stored[3], stored[0]} {
			want = append(want, dryRunOrder{OrderID: o.ID, Verdict: "apply", Effects: []dryRunEffect{
				{Command: "ZINCRBY", Key: "top_customers", Args: []string{fmt.Sprint(o.Qty), o.Who}, Verdict: "ok"},
			}})
		}
		checkDryRun(t, got, want)

		// The text form says the same, and a config the plugin rejects is
		// a usage error at its line.
		text := mustRun(t, 0, append([]string{"dry-run"}, args[:len(args)-4]...)...)
		wantLine(t, text.stdout, fmt.Sprintf("order %s: would apply 1 effects", stored[0].ID))
		wantLine(t, text.stdout, fmt.Sprintf("  ok         ZINCRBY top_customers %d %s", stored[0].Qty, quoted(stored[0].Who)))
		wantLine(t, text.stdout, "dry-run top-customers: 5 orders: 4 would apply (4 effects), 0 refused, 0 wrong type, 0 plugin errors, 0 failed, 1 bad orders; 0 already applied; nothing was written")
		bad := mustRun(t, 2, "dry-run", "-config", cfg, "-plugin", "top-customers", "-path", bin, "-plugin-config", `score = "price"`)
		if !strings.Contains(bad.stderr, `-plugin-config:3,1-16: Plugin "top-customers" rejected its config; score "price" is neither`) {
			t.Errorf("stderr does not point at the inline config:\n%s", bad.stderr)
		}
		diffState(t, snapshot(t, rdb), before)
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"-config", cfg},
			{"-config", cfg, "-plugin", "top-customers"},
			{"-config", cfg, "-plugin", "customer-invoices", "-n", "2", "-id", stored[0].ID},
		} {
			mustRun(t, 2, append([]string{"dry-run"}, args...)...)
		}
	})
}

// dryRunJSON runs dry-run -json with args and decodes its lines.
func dryRunJSON(t *testing.T, args ...string) []dryRunOrder {
	t.Helper()
	res := mustRun(t, 0, append([]string{"dry-run", "-json"}, args...)...)
	var out []dryRunOrder
	for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		var o dryRunOrder
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("dry-run printed a line that is not JSON: %q: %v", line, err)
		}
		out = append(out, o)
	}
	return out
}

func checkDryRun(t *testing.T, got, want []dryRunOrder) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	lines := func(os []dryRunOrder) string {
		var b strings.Builder
		for _, o := range os {
			j, _ := json.Marshal(o)
			fmt.Fprintf(&b, "%s\n", j)
		}
		return b.String()
	}
	t.Errorf("dry-run verdicts differ\ngot:\n%swant:\n%s", lines(got), lines(want))
}

// snapshot is every key of rdb's database as DUMP serializes it, with its
// TTL: what "unchanged, byte for byte" compares.
func snapshot(t *testing.T, rdb *redis.Client) map[string]value {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]value{}
	for _, k := range keys {
		d, err := rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		ttl, err := rdb.PExpireTime(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[k] = value{Type: "dump", Data: fmt.Sprintf("%x expires=%d", d, ttl)}
	}
	return out
}

// plainDecimal is cost as sdk.FormatFloat writes it ("4662.00" → "4662").
func plainDecimal(t *testing.T, cost string) string {
	t.Helper()
	f, err := strconv.ParseFloat(cost, 64)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.FormatFloat(f)
}

func quoted(s string) string {
	if strings.ContainsAny(s, " \"") {
		return fmt.Sprintf("%q", s)
	}
	return s
}
