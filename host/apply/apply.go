// Package apply writes the outcome of one batch to Redis in a single atomic
// step: every plugin's effects for every order, each (plugin, order) pair's
// done marker, and the batch's dead letters. A pair whose marker is already
// set is skipped, which makes redelivered orders harmless. On a Redis
// Cluster, where one script may only touch one hash slot, a batch lands
// slot by slot instead, each pair still exactly once (cluster.go).
package apply

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/sdk"
)

//go:embed apply.lua
var applyLua string

// checksLua is the value checks apply.lua and cluster.lua share, put where
// each says "-- @checks" (withChecks).
//
//go:embed checks.lua
var checksLua string

func withChecks(script string) string {
	return strings.Replace(script, "-- @checks\n", checksLua, 1)
}

// Write is one plugin's effects for one order.
type Write struct {
	OrderKey string
	// Marker is the hash field of OrderKey that records the write as done.
	Marker  string
	Effects []sdk.Effect
	// Plugin, OrderID and Channel say whose write it is, for dead letters
	// and metrics; they are not sent to Redis.
	Plugin, OrderID, Channel string
}

// Batch is everything one batch leaves in Redis.
type Batch struct {
	Writes      []Write
	DeadLetters []deadletter.Entry
	// Replayed are dead-letter entries this batch settles: deleted from the
	// dead-letter stream with the batch.
	Replayed []string
	// Acks are source stream entries every plugin has finished with.
	Acks []Ack
}

// Ack is one source stream entry to acknowledge: a stream source may read
// several stream keys, and an entry id means something in its own only.
type Ack struct {
	Stream, ID string
}

// ackStreams returns the streams acks name, in first-seen order, and each
// one's entry ids.
func ackStreams(acks []Ack) ([]string, map[string][]string) {
	var streams []string
	ids := map[string][]string{}
	for _, a := range acks {
		if _, ok := ids[a.Stream]; !ok {
			streams = append(streams, a.Stream)
		}
		ids[a.Stream] = append(ids[a.Stream], a.ID)
	}
	return streams, ids
}

// appendAckStreams appends the streams acks name, in first-seen order: a
// batch names one or a few.
func appendAckStreams(dst []string, acks []Ack) []string {
	for _, a := range acks {
		if !slices.Contains(dst, a.Stream) {
			dst = append(dst, a.Stream)
		}
	}
	return dst
}

func (b Batch) empty() bool {
	return len(b.Writes) == 0 && len(b.DeadLetters) == 0 && len(b.Replayed) == 0 && len(b.Acks) == 0
}

// Status says what became of one Write.
type Status int

// The fates of a Write.
const (
	// Applied: effects written and marker set.
	Applied Status = 1
	// AlreadyDone: the marker was set before; nothing written.
	AlreadyDone Status = 0
	// Vanished: the order hash was deleted after it was loaded; nothing
	// written, and a dead letter in its place.
	Vanished Status = -1
	// Refused: Redis could not have applied the effects (a key of another
	// type, a value that is not a number or would overflow); nothing
	// written, and a dead letter in its place.
	Refused Status = -2
)

// Result reports the fate of each Write of a Batch, in order, and the dead
// letters written with it.
type Result struct {
	Statuses []Status
	// Reasons holds, for each Refused or Vanished write, why.
	Reasons map[int]string
	// DeadLetters are every dead letter written: the batch's own, then one
	// per Refused or Vanished write.
	DeadLetters []deadletter.Entry
}

// OwnKeyError is returned, with nothing written, when one of eventhost's own
// keys (the dead-letter stream, the source stream) holds another type. Only
// an operator can fix that: the caller pauses and retries.
// Both are streams.
type OwnKeyError struct {
	Key, Have string
}

// PauseReason is the pipeline's pause reason while the key is wrong.
func (e *OwnKeyError) PauseReason() string { return "eventhost's own key holds another type" }

func (e *OwnKeyError) Error() string {
	return fmt.Sprintf("eventhost's key %s holds a %s, not a stream: rename or delete it", e.Key, e.Have)
}

// Applier applies batches. Set its fields before the first Apply.
type Applier struct {
	rdb      redis.UniversalClient
	dlStream string
	now      func() time.Time

	// DeadLetterMaxLen trims the dead-letter stream to about this many
	// entries as dead letters are added (XADD MAXLEN ~); 0 (the default)
	// keeps them all.
	DeadLetterMaxLen int64

	// AckGroup is the consumer group a batch's Acks are acknowledged for,
	// each on the stream it names. Empty (the default) means none: Apply
	// refuses a batch with Acks, which it could not acknowledge.
	AckGroup string

	// MaxArgs bounds the arguments of one script run, so that one batch
	// cannot block Redis for long: a larger batch is applied in several
	// runs, each whole, split between orders (default 200,000).
	MaxArgs int

	// WaitReplicas, on a Redis Cluster, is how many replicas each master's
	// share of a batch must reach (WAIT) before the orders are marked done,
	// so that a failover cannot lose effects whose markers survive; 0 waits
	// for none. A master with fewer replicas online is waited for all it
	// has. WaitTimeout bounds each WAIT; past it the batch is retried.
	WaitReplicas int
	WaitTimeout  time.Duration

	cluster *clusterApply // nil on a single node or Sentinel

	// plans keeps plans, with their memory, from batch to batch: planning
	// is the host's main cost per order.
	plans sync.Pool
	// scriptSHA and scriptSrc are apply.lua's digest and text, EVALSHA's
	// and EVAL's arguments (boxed once: see run).
	scriptSHA, scriptSrc any
}

// New returns an Applier writing dead letters to stream.
func New(rdb redis.UniversalClient, stream string) *Applier {
	src := withChecks(applyLua)
	a := &Applier{rdb: rdb, dlStream: stream, now: time.Now, MaxArgs: 200_000,
		scriptSHA: redis.NewScript(src).Hash(), scriptSrc: src}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		// One script may only touch one hash slot: see cluster.go.
		a.cluster = newClusterApply(cc)
	}
	return a
}

// Apply writes b atomically: every write lands with its done marker, or
// none does. A write whose marker is set already is skipped (AlreadyDone);
// one Redis could not apply (its key holds another type, a value it
// increments is not a number or would overflow) becomes a dead letter
// (Refused), as does one whose order hash is gone (Vanished), in the same
// atomic step as the rest. On error nothing of b was written.
func (a *Applier) Apply(ctx context.Context, b Batch) (Result, error) {
	res := Result{Statuses: make([]Status, len(b.Writes)), Reasons: map[int]string{}}
	if b.empty() {
		return res, nil
	}
	if len(b.Acks) > 0 && a.AckGroup == "" {
		return res, errors.New("apply: batch acknowledges stream entries, but no group was set in AckGroup")
	}
	live := liveWrites(b.Writes, res.Statuses)
	if a.cluster != nil {
		return a.applyCluster(ctx, b, live, res)
	}
	dead := append([]deadletter.Entry(nil), b.DeadLetters...)
	parts := a.split(b.Writes, live)
	for n, part := range parts {
		tail := Batch{}
		if n == len(parts)-1 {
			// Dead letters, deletes and acks go with the last part: a
			// host dying between parts leaves its orders to be redone,
			// and their done markers skip what landed.
			tail = Batch{DeadLetters: dead, Replayed: b.Replayed, Acks: b.Acks}
		}
		written, err := a.applyPart(ctx, b.Writes, part, tail, &res)
		if err != nil {
			return Result{}, err
		}
		res.DeadLetters = append(res.DeadLetters, written...)
	}
	return res, nil
}

// liveWrites returns the writes to apply: a pair twice in one batch (an
// id delivered twice) is applied once, its later copies AlreadyDone in
// statuses.
func liveWrites(writes []Write, statuses []Status) []int {
	live := make([]int, 0, len(writes))
	// An order's writes come one after the other (the pipeline gathers
	// them so): a pair can then only repeat within its order's run, and
	// runs are a few writes long. Only orders are looked up, to find out
	// that one comes back after another, which needs the pairs' map.
	runs := make(map[string]struct{}, len(writes)/2)
	from := 0 // the current run's first write
	for i := range writes {
		w := &writes[i]
		if i > 0 && w.OrderKey != writes[i-1].OrderKey {
			from = i
		}
		if from == i {
			if _, again := runs[w.OrderKey]; again {
				return livePairs(writes, statuses)
			}
			runs[w.OrderKey] = struct{}{}
		}
		dup := false
		for j := from; j < i; j++ {
			if writes[j].Marker == w.Marker {
				dup = true
				break
			}
		}
		if dup {
			statuses[i] = AlreadyDone
			continue
		}
		live = append(live, i)
	}
	return live
}

// livePairs is liveWrites for a batch whose orders' writes are not one
// after the other.
func livePairs(writes []Write, statuses []Status) []int {
	live := make([]int, 0, len(writes))
	seen := make(map[[2]string]struct{}, len(writes))
	for i, w := range writes {
		k := [2]string{w.OrderKey, w.Marker}
		if _, dup := seen[k]; dup {
			statuses[i] = AlreadyDone
			continue
		}
		seen[k] = struct{}{}
		live = append(live, i)
	}
	return live
}

// split cuts live into runs of whole orders whose arguments stay within
// MaxArgs (a single order may exceed it: orders are bounded on their own).
func (a *Applier) split(writes []Write, live []int) [][]int {
	var parts [][]int
	from, size := 0, 0
	for i, w := range live {
		n := 3
		for _, e := range writes[w].Effects {
			n += 3 + len(e.Args)
		}
		newOrder := i == 0 || writes[live[i-1]].OrderKey != writes[w].OrderKey
		if newOrder && i > from && size+n > a.MaxArgs {
			parts = append(parts, live[from:i:i])
			from, size = i, 0
		}
		size += n
	}
	return append(parts, live[from:])
}

// applyPart runs the script over the writes in live plus tail's dead
// letters, deletes and acks, leaving out what cannot land until the rest
// does. It returns the dead letters written.
func (a *Applier) applyPart(ctx context.Context, writes []Write, live []int, tail Batch, res *Result) ([]deadletter.Entry, error) {
	dead := tail.DeadLetters
	acks := appendAckStreams(nil, tail.Acks)
	for {
		refused := map[int]leftOut{}
		landed, err := a.attempt(ctx, writes, live, dead, tail, acks, refused)
		if err != nil {
			return nil, err
		}
		if landed {
			for _, w := range live {
				res.Statuses[w] = Applied
			}
			return dead, nil
		}
		if len(refused) == 0 {
			return nil, errors.New("apply script reported problems that match no write")
		}
		kept := live[:0:0]
		for _, w := range live {
			out, ok := refused[w]
			switch {
			case !ok:
				kept = append(kept, w)
			case out.status == AlreadyDone:
				res.Statuses[w] = AlreadyDone
			default:
				res.Statuses[w], res.Reasons[w] = out.status, out.reason
				reason := out.reason
				wr := writes[w]
				dead = append(dead, deadletter.Entry{
					OrderID: wr.OrderID, Channel: wr.Channel, Plugin: wr.Plugin, Reason: reason, Attempts: 1, OrderKey: wr.OrderKey,
				})
			}
		}
		live = kept
	}
}

// attempt plans live and runs the script once. It reports whether
// everything landed; if not, refused holds the writes to leave out.
func (a *Applier) attempt(ctx context.Context, writes []Write, live []int, dead []deadletter.Entry, tail Batch, acks []string, refused map[int]leftOut) (bool, error) {
	p := a.newPlan(writes, live, a.dlStream, acks, refused)
	defer a.releasePlan(p)
	if len(refused) > 0 {
		return false, nil
	}
	raw, err := a.run(ctx, a.encode(p, dead, tail))
	if err != nil {
		return false, fmt.Errorf("apply batch of %d writes, %d dead letters and %d acks: %w", len(live), len(dead), len(tail.Acks), err)
	}
	problems, err := decode(raw)
	if err != nil || problems == nil {
		return err == nil, err
	}
	return false, a.leaveOut(p, problems, refused)
}

// run runs cmd, an EVALSHA of apply.lua, as redis.Script.Run would: by
// EVAL when Redis lacks the script. It sends cmd as it is, where
// Script.Run would copy the arguments into another []any and box every
// key (an allocation each).
func (a *Applier) run(ctx context.Context, cmd []any) (any, error) {
	raw, err := a.rdb.Do(ctx, cmd...).Result()
	if errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd[0], cmd[1] = "eval", a.scriptSrc
		raw, err = a.rdb.Do(ctx, cmd...).Result()
	}
	return raw, err
}

// leftOut is a write a run leaves out, and why.
type leftOut struct {
	status Status
	reason string
}

// leaveOut turns the script's problems into the writes to leave out.
func (a *Applier) leaveOut(p *plan, problems []string, refused map[int]leftOut) error {
	for _, pr := range problems {
		kind, rest, _ := strings.Cut(pr, " ")
		first, arg, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(first)
		if err != nil || n < 1 {
			return fmt.Errorf("apply script returned a malformed problem %q", pr)
		}
		switch kind {
		case "done":
			k, _ := strconv.Atoi(arg)
			if n > len(p.orders) || k < 1 || k > len(p.orders[n-1].writes) {
				return fmt.Errorf("apply script returned a malformed problem %q", pr)
			}
			refused[p.orders[n-1].writes[k-1]] = leftOut{status: AlreadyDone}
		case "gone":
			if n > len(p.orders) {
				return fmt.Errorf("apply script returned a malformed problem %q", pr)
			}
			for _, w := range p.orders[n-1].writes {
				if _, ok := refused[w]; !ok {
					refused[w] = leftOut{Vanished, "order hash was deleted before its effects were applied"}
				}
			}
		case "type":
			if n > len(p.keys) {
				return fmt.Errorf("apply script returned a malformed problem %q", pr)
			}
			key := p.keys[n-1]
			acc := p.accOf(key)
			if acc == nil {
				return &OwnKeyError{Key: key, Have: arg}
			}
			for _, w := range p.writesOn(acc) {
				if _, ok := refused[w]; !ok {
					refused[w] = leftOut{Refused, fmt.Sprintf("refused effect: key %s holds a %s, but its effects need a %s", key, arg, acc.class.typ())}
				}
			}
		case "value":
			if n > len(p.checked) {
				return fmt.Errorf("apply script returned a malformed problem %q", pr)
			}
			f := p.checked[n-1]
			where := "key " + f.acc.key
			if f.field != "" {
				where += " field " + f.field
			}
			for _, w := range p.writesOf(f.acc, f.field) {
				if _, ok := refused[w]; !ok {
					refused[w] = leftOut{Refused, "refused effect: " + where + " " + arg}
				}
			}
		default:
			return fmt.Errorf("apply script returned a malformed problem %q", pr)
		}
	}
	return nil
}

// accOf returns the effects on key, nil for a key no effect writes.
func (p *plan) accOf(key string) *keyAcc {
	if n, ok := p.names[key]; ok {
		return p.named[n].acc
	}
	return nil
}

// encode lays p and tail out as the EVALSHA command that runs apply.lua:
// its KEYS, then its ARGV as apply.lua describes them. The command points
// into p, tail and the batch's writes: they must not change until it ran.
func (a *Applier) encode(p *plan, dead []deadletter.Entry, tail Batch) []any {
	// Dead letters' order hashes join KEYS, which come first.
	p.deadKeys = p.deadKeys[:0]
	for i := range dead {
		k := 0
		if dead[i].OrderKey != "" {
			k = p.key(dead[i].OrderKey)
		}
		p.deadKeys = append(p.deadKeys, k)
	}
	args := &p.args
	args.boxed("evalsha")
	args.boxed(a.scriptSHA)
	args.int(len(p.keys))
	for i := range p.keys {
		args.str(&p.keys[i])
	}
	// The done markers hold the apply time, which tells a person when an
	// order was counted: a field each in microseconds, a list of plugins
	// in milliseconds (keyspace.DoneList: the list must stay short).
	now := a.now()
	args.int64(now.UnixMicro())
	args.int64(now.UnixMilli()) // a list naming no plugin: the time alone
	args.int64(a.DeadLetterMaxLen)
	if len(tail.Acks) > 0 {
		args.str(&a.AckGroup)
	} else {
		args.boxed("")
	}
	args.int(len(p.acks))
	for _, k := range p.acks {
		args.int(k)
	}
	args.int(len(p.sets))
	for s := range p.sets {
		names := p.set(s + 1)
		plugins := p.setPlugins(names)
		if list, ok := keyspace.DoneList(now.UnixMilli(), plugins); ok {
			args.str(&list)
		} else {
			args.boxed("")
		}
		args.int(len(names))
		for i := range names {
			args.str(&names[i])
			needle := keyspace.DoneListNeedle(plugins[i])
			args.str(&needle)
		}
	}
	appendOrders(args, p)
	appendTypes(args, p)
	at := args.reserve()
	args.set(at, p.checks(args))
	appendOps(args, p)
	args.int(len(dead))
	for i := range dead {
		d := &dead[i]
		args.int(p.deadKeys[i])
		// Dead letters are few: their own strings may allocate.
		field := keyspace.DeadField(d.Plugin)
		args.str(&field)
		fields := d.Fields()
		args.int(len(fields) + 2)
		for j := range fields {
			args.str(&fields[j])
		}
		args.boxed("time_ms")
		args.int64(now.UnixMilli())
	}
	args.int(len(tail.Replayed))
	for i := range tail.Replayed {
		args.str(&tail.Replayed[i])
	}
	for _, st := range p.ackStreams {
		at := args.reserve()
		n := 0
		for i := range tail.Acks {
			if tail.Acks[i].Stream == st {
				args.str(&tail.Acks[i].ID)
				n++
			}
		}
		args.set(at, n)
	}
	return args.done()
}

// decode reads the script's reply: nil problems when it wrote everything.
func decode(raw any) ([]string, error) {
	parts, ok := raw.([]any)
	if !ok || len(parts) == 0 {
		return nil, fmt.Errorf("apply script returned %T, want a list", raw)
	}
	if n, _ := parts[0].(int64); n == 1 {
		return nil, nil
	}
	problems := make([]string, 0, len(parts)-1)
	for _, p := range parts[1:] {
		s, _ := p.(string)
		problems = append(problems, s)
	}
	if len(problems) == 0 {
		return nil, errors.New("apply script refused the batch without saying why")
	}
	return problems, nil
}

// appendOrders lays out the orders: their hashes are consecutive KEYS from
// the first one's, and their marker sets come as runs of (count, set).
func appendOrders(args *args, p *plan) {
	first := 0
	if len(p.orders) > 0 {
		first = p.orders[0].key
	}
	args.int(len(p.orders))
	args.int(first)
	at, runs := args.reserve(), 0
	for i := 0; i < len(p.orders); {
		j := i + 1
		for j < len(p.orders) && p.orders[j].set == p.orders[i].set {
			j++
		}
		args.int(j - i)
		args.int(p.orders[i].set)
		runs++
		i = j
	}
	args.set(at, runs)
}

// appendTypes lays out the type each written key must have, as groups of
// keys that need one type, each a list of ranges of consecutive KEYS
// (layOut numbers keys of one class one after the other): eventhost's own
// streams first, then by type in the order of p.accs, which layOut grouped
// by class, and so by type.
func appendTypes(args *args, p *plan) {
	at := args.reserve()
	args.boxed("stream")
	r := keyRanges{args: args, at: args.reserve()}
	for _, k := range p.own {
		r.add(k)
	}
	for _, acc := range p.accs {
		if acc.class == classStream {
			r.add(acc.idx)
		}
	}
	r.end()
	groups := 1
	for i := 0; i < len(p.accs); {
		typ := p.accs[i].class.typ()
		j := i + 1
		for j < len(p.accs) && p.accs[j].class.typ() == typ {
			j++
		}
		if typ != "stream" {
			args.boxed(p.accs[i].class.typArg())
			r = keyRanges{args: args, at: args.reserve()}
			for _, acc := range p.accs[i:j] {
				r.add(acc.idx)
			}
			r.end()
			groups++
		}
		i = j
	}
	args.set(at, groups)
}

// keyRanges lays out KEYS positions as ranges of consecutive ones,
// (first, count)*, their number at the place reserved.
type keyRanges struct {
	args                *args
	at, n, first, count int
}

func (r *keyRanges) add(k int) {
	if r.count > 0 && k == r.first+r.count {
		r.count++
		return
	}
	r.flush()
	r.first, r.count = k, 1
}

func (r *keyRanges) flush() {
	if r.count > 0 {
		r.args.int(r.first)
		r.args.int(r.count)
		r.n++
	}
}

func (r *keyRanges) end() {
	r.flush()
	r.args.set(r.at, r.n)
}

// appendOps lays out the coalesced commands as runs of one command with
// one number of arguments.
func appendOps(args *args, p *plan) {
	at := args.reserve()
	w := opWriter{a: args}
	for _, acc := range p.accs {
		p.writeOps(acc, &w)
	}
	w.end()
	args.set(at, w.n)
}
