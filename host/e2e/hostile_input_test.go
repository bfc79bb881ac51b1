package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/publish"
)

// hostileOrders returns orders a hostile or broken producer could store,
// each with the exact start of the reason its dead letter must give. They
// are built from a valid order, so only what the name says is wrong. The
// config of the test sets limits { cost_decimals = 2 }; every other limit
// is the default.
func hostileOrders() []badOrder {
	base := publish.NewGenerator(6060).Next().Hash()
	with := func(kv ...string) map[string]string {
		h := map[string]string{}
		for k, v := range base {
			h[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	key := func(id string) string { return "order hash " + orderPrefix + id }
	// Just under the field limit, 800 times: 3.2 MB, fifty times the
	// order limit; the old host passed it to every plugin.
	big := with()
	for i := range 800 {
		big[fmt.Sprintf("blob%03d", i)] = strings.Repeat("x", 4000)
	}
	size := 0
	for k, v := range big {
		size += len(k) + len(v)
	}
	return []badOrder{
		{"hostile-field-5000", with("note", strings.Repeat("n", 5000)),
			key("hostile-field-5000") + `: field "note" holds 5000 bytes, over limits.max_field_bytes = 4096`},
		{"hostile-hash-3mb", big, key("hostile-hash-3mb") + fmt.Sprintf(" holds %d bytes, over limits.max_order_bytes = 65536", size)},
		{"hostile-qty-max-int64", with("qty", "9223372036854775807"),
			key("hostile-qty-max-int64") + `: field qty = "9223372036854775807" exceeds limits.max_qty = 1000000`},
		{"hostile-qty-over", with("qty", "1000001"), key("hostile-qty-over") + `: field qty = "1000001" exceeds limits.max_qty = 1000000`},
		{"hostile-qty-plus", with("qty", "+5"), key("hostile-qty-plus") + `: field qty = "+5" is not a positive integer`},
		{"hostile-cost-1e308", with("cost", "1e308"), key("hostile-cost-1e308") + `: field cost = "1e308" is not a non-negative number written as digits`},
		{"hostile-cost-exponent", with("cost", "1.5E2"), key("hostile-cost-exponent") + `: field cost = "1.5E2" is not a non-negative number`},
		{"hostile-cost-hex", with("cost", "0x1p10"), key("hostile-cost-hex") + `: field cost = "0x1p10" is not a non-negative number`},
		{"hostile-cost-inf", with("cost", "Infinity"), key("hostile-cost-inf") + `: field cost = "Infinity" is not a non-negative number`},
		{"hostile-cost-nan", with("cost", "nan"), key("hostile-cost-nan") + `: field cost = "nan" is not a non-negative number`},
		{"hostile-cost-huge", with("cost", "1"+strings.Repeat("0", 308)),
			key("hostile-cost-huge") + `: field cost = "1` + strings.Repeat("0", 63) + `"... exceeds limits.max_cost = 1000000000`},
		{"hostile-cost-over", with("cost", "1000000000.01"), key("hostile-cost-over") + `: field cost = "1000000000.01" exceeds limits.max_cost = 1000000000`},
		{"hostile-cost-decimals", with("cost", "12.505"),
			key("hostile-cost-decimals") + `: field cost = "12.505" has 3 fraction digits, over limits.cost_decimals = 2`},
		{"hostile-ts-future", with("ts", "99999999999"), key("hostile-ts-future") + `: field ts = "99999999999" exceeds limits.max_ts = 4102444800`},
		{"hostile-ts-past", with("ts", "86400"), key("hostile-ts-past") + `: field ts = "86400" is before limits.min_ts = 946684800`},
		{"hostile-who-utf8", with("who", "ann\xff"), key("hostile-who-utf8") + `: field "who" is not valid UTF-8`},
		{"hostile-event-utf8", with("event", "Judo \xc3"), key("hostile-event-utf8") + `: field "event" is not valid UTF-8`},
		{"hostile-extra-utf8", with("seat", "\xed\xa0\x80"), key("hostile-extra-utf8") + `: field "seat" is not valid UTF-8`},
		{"hostile-name-utf8", with("s\xfeat", "A1"), key("hostile-name-utf8") + `: field name "s\xfeat" is not valid UTF-8`},
		{"hostile-event-newline", with("event", "Judo\nFinal"), key("hostile-event-newline") + `: field "event" holds control character U+000A at byte 4`},
		{"hostile-who-nul", with("who", "ann\x00root"), key("hostile-who-nul") + `: field "who" holds control character U+0000 at byte 3`},
		{"hostile-who-escape", with("who", "\x1b]0;owned\a"), key("hostile-who-escape") + `: field "who" holds control character U+001B at byte 0`},
		{"hostile-note-nul", with("note", "a\x00b"), key("hostile-note-nul") + `: field "note" holds control character U+0000 at byte 1`},
		// Ids are refused before their hash is read.
		{"hostile-\x1b[2J", with(), `order id "hostile-\x1b[2J" holds control character U+001B at byte 8`},
		{"hostile-id-\xff", with(), `order id "hostile-id-\xff" is not valid UTF-8`},
		{strings.Repeat("i", 1<<20), with(), "order id of 1048576 bytes exceeds limits.max_id_bytes = 256"},
	}
}

// TestHostileInputOrders publishes hostile orders among valid ones, in the
// same batches, through the real binary and plugin processes. Each hostile
// order must end as exactly one dead letter with the reason that names its
// limit; no plugin may be restarted or disabled; every valid order must be
// counted, leaving exactly the tutorial's state; and no dead letter may hold
// the 1 MiB id in full.
func TestHostileInputOrders(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	cfg := writeConfig(t, srv, "u8", metricsBlock+"limits { cost_decimals = 2 }")
	h := startHost(t, rdb, cfg)
	metricsAddr := h.metricsAddr(t)

	bad := hostileOrders()
	gen := publish.NewGenerator(5050)
	var valid []publish.Order
	// A valid order with free text in an extra field: line breaks and
	// tabs pass, and reach the plugins without failing the batch.
	note := gen.Next()
	valid = append(valid, note)
	pipe := rdb.Pipeline()
	pipe.HSet(ctx, orderPrefix+note.ID, append(note.Fields(), "note", "row 3,\nseat\t12 – 決勝")...)
	pipe.Publish(ctx, channel, note.ID)
	// Two valid orders between hostile ones, all in one round trip: they
	// share batches (max_orders 256).
	for _, b := range bad {
		for range 2 {
			o := gen.Next()
			valid = append(valid, o)
			pipe.HSet(ctx, orderPrefix+o.ID, o.Fields()...)
			pipe.Publish(ctx, channel, o.ID)
		}
		pipe.HSet(ctx, orderPrefix+b.id, b.fields)
		pipe.Publish(ctx, channel, b.id)
	}
	last := gen.Next()
	valid = append(valid, last)
	pipe.HSet(ctx, orderPrefix+last.ID, last.Fields()...)
	pipe.Publish(ctx, channel, last.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitApplied(t, rdb, ids(valid), bundled, 60*time.Second)
	waitFor(t, 30*time.Second, fmt.Sprintf("%d dead letters", len(bad)), func() bool {
		n, _ := rdb.XLen(ctx, deadLetterStream).Result()
		return n >= int64(len(bad))
	})

	// One dead letter per hostile order, with the reason that names what
	// is wrong; the 1 MiB id is stored cut to deadletter.MaxIDBytes.
	letters, err := deadletter.List(ctx, rdb, deadLetterStream, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != len(bad) {
		t.Errorf("%d dead letters, want %d", len(letters), len(bad))
	}
	byID := map[string][]deadletter.Entry{}
	for _, e := range letters {
		byID[e.OrderID] = append(byID[e.OrderID], e)
	}
	for _, b := range bad {
		stored := b.id
		if len(b.id) > deadletter.MaxIDBytes {
			stored = b.id[:deadletter.MaxIDBytes] + "…[truncated, 1048576 bytes]"
		}
		got := byID[stored]
		delete(byID, stored)
		if len(got) != 1 {
			t.Errorf("order %.40q has %d dead letters, want 1", b.id, len(got))
			continue
		}
		e := got[0]
		if !strings.HasPrefix(e.Reason, b.reason) {
			t.Errorf("dead letter of %.40q: reason\n  %.300q\nwant it to start with\n  %.300q", b.id, e.Reason, b.reason)
		}
		if len(e.Reason) > deadletter.MaxReasonBytes+40 {
			t.Errorf("dead letter of %.40q: reason of %d bytes", b.id, len(e.Reason))
		}
		if e.Plugin != "" || e.Channel != channel || e.Attempts != 1 {
			t.Errorf("dead letter of %.40q = %+v, want plugin \"\", channel %s, attempts 1", b.id, e, channel)
		}
	}
	for id := range byID {
		t.Errorf("unexpected dead letter for order %.40q", id)
	}
	if mem, err := rdb.MemoryUsage(ctx, deadLetterStream).Result(); err != nil || mem > 256<<10 {
		t.Errorf("dead-letter stream uses %d bytes (%v) for %d entries: a hostile order is stored in full", mem, err, len(bad))
	}

	// A refused hash keeps its fields and gains only the dead marker, so
	// catch-up passes it over; the hash under the 1 MiB id is not touched
	// (marking it would send the id to Redis once more).
	for _, b := range bad {
		got, err := rdb.HGetAll(ctx, orderPrefix+b.id).Result()
		if err != nil {
			t.Fatal(err)
		}
		_, marked := got[keyspace.DeadOrderField]
		delete(got, keyspace.DeadOrderField)
		if wantMarked := len(b.id) <= deadletter.MaxIDBytes; marked != wantMarked {
			t.Errorf("%.60q: dead marker set = %v, want %v", orderPrefix+b.id, marked, wantMarked)
		}
		if len(got) != len(b.fields) {
			t.Errorf("%.60q holds %d fields, want the %d stored", orderPrefix+b.id, len(got), len(b.fields))
		}
		for k := range got {
			if strings.HasPrefix(k, keyspace.MarkerPrefix) {
				t.Errorf("%.60q has marker %s", orderPrefix+b.id, k)
			}
		}
	}

	// Every valid order counted once, the free-text note kept as stored.
	checkOrderHashes(t, rdb, valid[1:], bundled)
	if got := rdb.HGet(ctx, orderPrefix+note.ID, "note").Val(); got != "row 3,\nseat\t12 – 決勝" {
		t.Errorf("note = %q", got)
	}
	checkTutorialState(t, rdb, valid)

	// No plugin restarted, errored or disabled: a bad order is the
	// order's fault.
	for _, p := range bundled {
		checkMetric(t, metricsAddr, fmt.Sprintf(`eventhost_orders_processed_total{channel="purchase_orders",plugin=%q}`, p), float64(len(valid)))
		checkMetric(t, metricsAddr, fmt.Sprintf(`eventhost_plugin_up{plugin=%q}`, p), 1)
		// Counted before the batch's effects land, so once processed is
		// complete these are final: absent or 0.
		zero := []string{fmt.Sprintf(`eventhost_plugin_restarts_total{plugin=%q}`, p)}
		for _, kind := range []string{"crash", "timeout", "protocol"} {
			zero = append(zero, fmt.Sprintf(`eventhost_plugin_errors_total{kind=%q,plugin=%q}`, kind, p))
		}
		for _, series := range zero {
			if v, ok := scrapeMetric(t, metricsAddr, series); ok && v != 0 {
				t.Errorf("metric %s = %v, want 0", series, v)
			}
		}
	}
	checkMetric(t, metricsAddr, `eventhost_orders_rejected_total{channel="purchase_orders"}`, float64(len(bad)))
	checkMetric(t, metricsAddr, `eventhost_orders_dead_lettered_total{channel="purchase_orders",plugin="",reason="bad order"}`, float64(len(bad)))
	checkMetric(t, metricsAddr, `eventhost_orders_received_total{channel="purchase_orders"}`, float64(len(valid)+len(bad)))
	checkMetric(t, metricsAddr, `eventhost_orders_loaded_total{channel="purchase_orders"}`, float64(len(valid)))
	resp, err := http.Get("http://" + metricsAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %s, want 200", resp.Status)
	}

	// deadletter list shows the hostile ids and reasons escaped: no
	// escape sequence reaches the reader's terminal.
	res := runEventhost(t, 30*time.Second, nil, "deadletter", "list", "-config", cfg, "-n", "0")
	if res.code != 0 {
		t.Fatalf("deadletter list exited %d: %s", res.code, res.stderr)
	}
	if strings.ContainsAny(res.stdout, "\x1b\x00\a") || !strings.Contains(res.stdout, `"hostile-\x1b[2J"`) {
		t.Errorf("deadletter list printed a control character, or not the escaped id:\n%.3000s", res.stdout)
	}
	if !strings.Contains(res.stdout, fmt.Sprintf("%d entries\n", len(bad))) {
		t.Errorf("deadletter list does not count %d entries:\n%.3000s", len(bad), res.stdout)
	}

	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM, want 0", code)
	}
}
