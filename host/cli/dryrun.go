package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/engine"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/pluginhost"
	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/host/redisconn"
	"github.com/eventhost/eventhost/sdk"
)

// dryRunDefaultOrders is how many stored orders dry-run shows without -n.
const dryRunDefaultOrders = 10

// inlineConfigFile names the -plugin-config text in diagnostics.
const inlineConfigFile = "-plugin-config"

// dryRunCmd runs one plugin over stored orders and prints what it would
// write, with the policy's verdict on each effect. It reads Redis (SCAN,
// HGETALL, TYPE) and writes nothing: no effect, no marker, no dead letter,
// no registration of the plugin.
func dryRunCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dry-run", stderr)
	path := configFlag(fs)
	name := fs.String("plugin", "", "the plugin to run (required): a block of the config, or a binary given with -path")
	n := fs.Int("n", dryRunDefaultOrders, "how many stored orders to run it over (0: every one)")
	var ids []string
	fs.Func("id", "run it over this order only (repeatable; instead of -n)", func(s string) error {
		if s == "" {
			return errors.New("empty order id")
		}
		ids = append(ids, s)
		return nil
	})
	bin := fs.String("path", "", "run this plugin binary instead of the configured one (the plugin need not be configured)")
	inline := fs.String("plugin-config", "", "the body of the plugin's config {} block, in HCL, replacing the configured one")
	var readPaths []string
	fs.Func("read-path", "a file or directory the plugin may read inside the sandbox, added to its read_paths (repeatable)", func(s string) error {
		abs, err := filepath.Abs(s)
		readPaths = append(readPaths, abs)
		return err
	})
	asJSON := fs.Bool("json", false, "one JSON object per order instead of text")
	if err := parse(fs, args); err != nil {
		return err
	}
	nSet := false
	fs.Visit(func(f *flag.Flag) { nSet = nSet || f.Name == "n" })
	switch {
	case *name == "":
		return usageError{errors.New("-plugin NAME is required")}
	case *n < 0:
		return usageError{fmt.Errorf("-n %d: want 0 or more", *n)}
	case nSet && len(ids) > 0:
		return usageError{errors.New("-n and -id exclude each other")}
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	block, err := dryRunBlock(cfg, *path, *name, *bin, *inline, readPaths, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(cfg.Log, stderr)
	plan, err := planSandbox(cfg)
	if err != nil {
		return err
	}
	m := metrics.New()
	logSandbox(plan, logger, m)

	rdb, err := redisconn.New(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if len(ids) == 0 {
		if ids, err = storedOrderIDs(ctx, rdb, cfg.OrderKeyPrefix, *n); err != nil {
			return err
		}
	}

	socketDir, err := pluginhost.NewSocketDir("", logger)
	if err != nil {
		return err
	}
	defer os.RemoveAll(socketDir)
	inst, err := pluginhost.Launch(ctx, block, logger, m, socketDir)
	if err != nil {
		return pluginConfigError(err, stderr)
	}
	defer inst.Stop()
	desc := inst.Description()
	pol := engine.Policy(block, desc.Keys, engine.ReservedKeys(cfg), cfg.EffectLimits)

	out := dryRunPrinter{w: stdout, json: *asJSON}
	out.header(desc, block.Path, len(ids))
	loader := orders.NewLoader(rdb, cfg.OrderKeyPrefix)
	var sum dryRunSummary
	for start := 0; start < len(ids); start += cfg.Batch.MaxOrders {
		end := min(start+cfg.Batch.MaxOrders, len(ids))
		verdicts, err := dryRunBatch(ctx, rdb, loader, inst, pol, ids[start:end])
		if err != nil {
			return err
		}
		for _, v := range verdicts {
			sum.add(v)
			out.order(v)
		}
	}
	summary := sum.String(desc.Name)
	if *asJSON {
		fmt.Fprintln(stderr, summary)
	} else {
		fmt.Fprintln(stdout, summary)
	}
	return nil
}

// dryRunBlock is the plugin block dry-run launches: the config's block named
// name, or, with bin, a block for that binary (the configured block's
// settings when there is one). inline replaces the block's config {} body.
func dryRunBlock(cfg *config.Config, cfgPath, name, bin, inline string, readPaths []string, stderr io.Writer) (config.Plugin, error) {
	var block config.Plugin
	found := false
	for _, p := range cfg.Plugins {
		if p.Name == name {
			block, found = p, true
		}
	}
	if !found && bin == "" {
		return block, usageError{fmt.Errorf("%s has no plugin %q; give -path BIN to try a binary that is not configured", cfgPath, name)}
	}
	if bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return block, usageError{fmt.Errorf("-path %s: %w", bin, err)}
		}
		bin = abs
	}
	if !found || inline != "" {
		// HCL wants a nested block on lines of its own: the inline text
		// starts on line 3 of the "file" diagnostics name.
		src := fmt.Sprintf("plugin %q {\nconfig {\n%s\n}\n}\n", name, inline)
		synth, diags := config.Parse(inlineConfigFile, []byte(src))
		printDiags(stderr, diags)
		if diags.HasErrors() {
			return block, usageError{fmt.Errorf("%s is not a valid config block body", inlineConfigFile)}
		}
		if found {
			block.Body = synth.Plugins[0].Body
		} else {
			block = synth.Plugins[0]
			block.Sandbox = cfg.Sandbox
			block.Channels = cfg.Source.Channels
		}
	}
	if bin != "" {
		block.Path = bin
		block.SHA256 = "" // the pin is the configured binary's
	}
	block.ReadPaths = append(block.ReadPaths, readPaths...)
	return block, nil
}

// storedOrderIDs returns the ids of up to n stored orders (every one when n
// is 0), in id order: the first n that SCAN finds, so not necessarily the
// n smallest ids of the database.
func storedOrderIDs(ctx context.Context, rdb redis.UniversalClient, prefix string, n int) ([]string, error) {
	var ids []string
	iter := rdb.Scan(ctx, 0, globEscape(prefix)+"*", 1000).Iterator()
	for iter.Next(ctx) && (n == 0 || len(ids) < n) {
		ids = append(ids, strings.TrimPrefix(iter.Val(), prefix))
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("scan stored orders %s*: %w", prefix, err)
	}
	sort.Strings(ids)
	return ids, nil
}

// globEscape escapes prefix for a SCAN MATCH pattern.
func globEscape(prefix string) string {
	var b strings.Builder
	for _, r := range prefix {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// The verdicts of an order, and of an effect, in -json.
const (
	verdictApply       = "apply"        // the host would apply its effects
	verdictRefused     = "refused"      // the policy refuses an effect: dead letter, nothing written
	verdictWrongType   = "wrong_type"   // a key holds another type: Redis would refuse, the host dead-letters
	verdictPluginError = "plugin_error" // the plugin returned an error: retried, then dead-lettered
	verdictFailed      = "failed"       // the plugin crashed, hung or answered garbage on it
	verdictBadOrder    = "bad_order"    // the order hash is missing or malformed: no plugin would see it
	verdictOK          = "ok"           // of an effect: allowed
)

// dryRunOrder is the verdict on one order.
type dryRunOrder struct {
	OrderID string `json:"order_id"`
	Verdict string `json:"verdict"`
	Reason  string `json:"reason,omitempty"`
	// AlreadyDone says the plugin's done marker is set: the host would
	// skip the order and write nothing, whatever the verdict.
	AlreadyDone bool           `json:"already_done"`
	Effects     []dryRunEffect `json:"effects"`
}

// dryRunEffect is one effect the plugin returned, with the verdict on it.
type dryRunEffect struct {
	Command string   `json:"command"`
	Key     string   `json:"key"`
	Args    []string `json:"args"`
	Verdict string   `json:"verdict"`
	Reason  string   `json:"reason,omitempty"`
}

// dryRunBatch loads ids, runs the plugin over the valid ones and judges
// each answer as the host would: the policy (CheckAll for the order,
// Check for each effect), then the types of the keys in Redis.
func dryRunBatch(ctx context.Context, rdb redis.UniversalClient, loader *orders.Loader, inst *pluginhost.Instance, pol *policy.Policy, ids []string) ([]dryRunOrder, error) {
	refs := make([]orders.Ref, len(ids))
	for i, id := range ids {
		refs[i] = orders.Ref{ID: id}
	}
	loaded, rejected, err := loader.Load(ctx, refs)
	if err != nil {
		return nil, err
	}
	byID := map[string]*dryRunOrder{}
	for _, r := range rejected {
		byID[r.ID] = &dryRunOrder{OrderID: r.ID, Verdict: verdictBadOrder, Reason: r.Reason, Effects: []dryRunEffect{}}
	}
	batch := make([]sdk.Order, len(loaded))
	for i, l := range loaded {
		batch[i] = l.Order
	}
	var results []sdk.Result
	if len(batch) > 0 {
		if results, err = inst.Process(ctx, batch); err != nil {
			return nil, fmt.Errorf("plugin %s: %w", inst.Name(), err)
		}
	}
	for i, l := range loaded {
		byID[l.Order.ID] = judge(l, inst.Name(), results[i], pol)
	}
	if err := judgeKeyTypes(ctx, rdb, byID); err != nil {
		return nil, err
	}
	out := make([]dryRunOrder, 0, len(ids))
	for _, id := range ids {
		if v, ok := byID[id]; ok {
			out = append(out, *v)
			delete(byID, id) // an id given twice is shown once
		}
	}
	return out, nil
}

// judge is the policy's verdict on one order's answer.
func judge(l orders.Loaded, plugin string, r sdk.Result, pol *policy.Policy) *dryRunOrder {
	v := &dryRunOrder{OrderID: l.Order.ID, Verdict: verdictApply, AlreadyDone: l.Done[plugin], Effects: []dryRunEffect{}}
	switch {
	case r.HostFailure != "":
		v.Verdict, v.Reason = verdictFailed, r.Err
		return v
	case r.Err != "":
		v.Verdict, v.Reason = verdictPluginError, r.Err
		if r.Permanent {
			v.Reason += " (permanent)"
		}
		return v
	}
	if err := pol.CheckAll(r.Effects); err != nil {
		v.Verdict, v.Reason = verdictRefused, err.Error()
	}
	for _, e := range r.Effects {
		ev := dryRunEffect{Command: e.Command, Key: e.Key, Args: e.Args, Verdict: verdictOK}
		if ev.Args == nil {
			ev.Args = []string{}
		}
		if err := pol.Check(e); err != nil {
			ev.Verdict, ev.Reason = verdictRefused, err.Error()
		}
		v.Effects = append(v.Effects, ev)
	}
	return v
}

// judgeKeyTypes marks the allowed effects whose key holds a type their
// command cannot write (WRONGTYPE): the host would dead-letter those
// orders. One pipelined TYPE per distinct key.
func judgeKeyTypes(ctx context.Context, rdb redis.UniversalClient, byID map[string]*dryRunOrder) error {
	types := map[string]*redis.StatusCmd{}
	pipe := rdb.Pipeline()
	for _, v := range byID {
		for _, e := range v.Effects {
			if _, ok := types[e.Key]; !ok && e.Verdict == verdictOK {
				types[e.Key] = pipe.Type(ctx, e.Key)
			}
		}
	}
	if len(types) == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("read the types of %d keys: %w", len(types), err)
	}
	for _, v := range byID {
		for i := range v.Effects {
			e := &v.Effects[i]
			if e.Verdict != verdictOK {
				continue
			}
			have, want := types[e.Key].Val(), policy.KeyType(e.Command)
			if have == "none" || have == want {
				continue
			}
			e.Verdict = verdictWrongType
			e.Reason = fmt.Sprintf("%s holds a %s; %s needs a %s", e.Key, have, e.Command, want)
			if v.Verdict == verdictApply {
				v.Verdict, v.Reason = verdictWrongType, e.Reason
			}
		}
	}
	return nil
}

// dryRunSummary counts orders by verdict.
type dryRunSummary struct {
	orders, effects, alreadyDone int
	byVerdict                    map[string]int
}

func (s *dryRunSummary) add(v dryRunOrder) {
	if s.byVerdict == nil {
		s.byVerdict = map[string]int{}
	}
	s.orders++
	s.byVerdict[v.Verdict]++
	if v.AlreadyDone {
		s.alreadyDone++
	}
	if v.Verdict == verdictApply {
		s.effects += len(v.Effects)
	}
}

func (s dryRunSummary) String(plugin string) string {
	return fmt.Sprintf("dry-run %s: %d orders: %d would apply (%d effects), %d refused, %d wrong type, %d plugin errors, %d failed, %d bad orders; %d already applied; nothing was written",
		plugin, s.orders, s.byVerdict[verdictApply], s.effects, s.byVerdict[verdictRefused], s.byVerdict[verdictWrongType],
		s.byVerdict[verdictPluginError], s.byVerdict[verdictFailed], s.byVerdict[verdictBadOrder], s.alreadyDone)
}

// dryRunPrinter writes the verdicts as text or JSON lines.
type dryRunPrinter struct {
	w    io.Writer
	json bool
}

func (p dryRunPrinter) header(desc sdk.Description, path string, n int) {
	if !p.json {
		fmt.Fprintf(p.w, "dry-run: plugin %s %s (%s) over %d stored orders; writes %q; nothing is written to Redis\n",
			desc.Name, desc.Version, path, n, desc.Keys)
	}
}

// verdictText says what the host would do with an order of that verdict.
var verdictText = map[string]string{
	verdictApply:       "would apply",
	verdictRefused:     "REFUSED, the host would dead-letter it and write none of its effects",
	verdictWrongType:   "WRONG TYPE, the host would dead-letter it",
	verdictPluginError: "PLUGIN ERROR, the host would retry it, then dead-letter it",
	verdictFailed:      "FAILED, the host would dead-letter it",
	verdictBadOrder:    "BAD ORDER, the host would dead-letter it before any plugin sees it",
}

func (p dryRunPrinter) order(v dryRunOrder) {
	if p.json {
		b, _ := json.Marshal(v)
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	line := fmt.Sprintf("order %s: %s", v.OrderID, verdictText[v.Verdict])
	if v.Verdict == verdictApply {
		line += fmt.Sprintf(" %d effects", len(v.Effects))
	}
	if v.Reason != "" {
		line += ": " + v.Reason
	}
	if v.AlreadyDone {
		line += " (already applied: the host would skip it)"
	}
	fmt.Fprintln(p.w, line)
	for _, e := range v.Effects {
		words := []string{e.Command, quoteArg(e.Key)}
		for _, a := range e.Args {
			words = append(words, quoteArg(a))
		}
		line := fmt.Sprintf("  %-10s %s", e.Verdict, strings.Join(words, " "))
		if e.Reason != "" && e.Verdict != verdictOK {
			line += "  # " + e.Reason
		}
		fmt.Fprintln(p.w, line)
	}
}

// quoteArg quotes s as Go would when it is empty or holds spaces or
// unprintable characters, so that each argument reads as one.
func quoteArg(s string) string {
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '"' }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
