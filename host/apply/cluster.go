package apply

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
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
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/sdk"
)

// On a Redis Cluster one script may only touch keys of one hash slot, so a
// batch lands slot by slot (docs/design.md, "Redis topologies"):
//
//  1. read each order's markers (pairs done already are left out);
//  2. check, writing nothing, every slot holding a pair whose effects span
//     several slots (cluster.lua declared read-only): a pair Redis would
//     refuse in one slot is refused in all of them, so a pair lands wholly
//     or not at all;
//  3. write every slot's share with cluster.lua, which also records, in the
//     slot's own idempotency record, the pairs it applied, and skips pairs
//     recorded there already (a redo after a crash, or another host); a
//     slot that only adds members to one set gets plain SADDs instead;
//     then WAIT for the nodes' replicas;
//  4. write dead letters, then set the orders' markers (mark.lua), then
//     delete replayed dead letters and acknowledge stream entries.
//
// A pair's record entries are deleted RecordKeep after its marker is set.
// Until then a host that read the markers before they were set may still
// be writing the pair; the record makes it skip. Such a late attempt cannot
// write after attemptWindow: cluster.lua refuses a write once Redis' clock
// passes the attempt's deadline. Every time compared is Redis' (TIME): the
// deadline, the record's and the markers' times, and the sweep's now; the
// hosts' clocks only measure durations (when to delete the entries).
//
// cluster_nodes.go runs the commands on the masters (and WAITs);
// cluster_records.go keeps the records bounded.

//go:embed cluster.lua
var clusterLua string

//go:embed mark.lua
var markLua string

//go:embed touch.lua
var touchLua string

//go:embed intent.lua
var intentLua string

const (
	// attemptWindow bounds one cluster apply attempt, from reading the
	// markers to the last slot write; past it the attempt stops and the
	// batch is retried from the markers.
	attemptWindow = 5 * time.Second
	// RecordKeep is how long a pair's record entries outlive its marker
	// on a Redis Cluster: attemptWindow plus what the Redis nodes' clocks
	// may disagree by (the deadline is read on one node and checked on
	// another; the sweep compares a marker's time on the order's node with
	// the record's node).
	RecordKeep = 2 * attemptWindow
)

// recordKey is the name of the idempotency record of the slot tag names.
func recordKey(tag string) string { return keyspace.RecordPrefix + "{" + tag + "}" }

// pairField is the record field of one (order, plugin) pair.
func pairField(w Write) string { return w.Marker + " " + w.OrderKey }

// redisTimeLua reads Redis' clock on the master of KEYS[1]'s slot.
const redisTimeLua = "#!lua flags=no-writes\nreturn redis.call('TIME')"

// redisTime is the time a TIME reply (seconds, microseconds) says.
func redisTime(reply any) (time.Time, error) {
	parts, ok := reply.([]any)
	if !ok || len(parts) != 2 {
		return time.Time{}, fmt.Errorf("TIME returned %v", reply)
	}
	var n [2]int64
	for i, p := range parts {
		s, _ := p.(string)
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("TIME returned %v", reply)
		}
		n[i] = v
	}
	return time.Unix(n[0], n[1]*1000), nil
}

// errLate is an attempt that ran past attemptWindow: retried from scratch.
var errLate error = lateError{}

type lateError struct{}

func (lateError) Error() string {
	return "cluster apply attempt ran past its time window; retrying from the done markers"
}

// PauseReason names what makes an attempt late: a slow or stalled host, or
// Redis nodes whose clocks disagree.
func (lateError) PauseReason() string {
	return "cluster apply ran past its time window (slow host, or redis clocks apart)"
}

// clusterApply is the Applier's state on a Redis Cluster.
type clusterApply struct {
	cc     *redis.ClusterClient
	tags   []string
	script *redis.Script
	// check is cluster.lua declared read-only, for the check phase: it
	// runs on a master that refuses writes (min-replicas-to-write, OOM),
	// so such a master fails the write phase of its slots alone.
	check *redis.Script
	mark  *redis.Script
	// touch runs before every WAIT (touch.lua).
	touch *redis.Script
	// intent reads an order's markers and stores its pairs' intents.
	intent *redis.Script

	// crashAt, in tests, ends attempts as a host dying would: "write"
	// after writing the first half of the slots, "dead", "mark", "settle"
	// or "cleanup" before that step.
	crashAt string
	// clockShift, in tests, moves Redis' clock as the host reads it
	// (TIME), to make an attempt late or a sweep later.
	clockShift time.Duration

	mu       sync.Mutex
	cleanups []cleanup
	// deadWritten holds the dead letters written by attempts of the batch
	// being applied, so that a retry (the pipeline retries a batch until
	// it lands) does not write them twice; cleared once a batch lands.
	// False: written, but its WAIT failed, so a retry waits for it again
	// before any dead marker is set.
	deadWritten map[string]bool
	replicas    map[string]replicaCount // node address → its connected replicas
}

func newClusterApply(cc *redis.ClusterClient) *clusterApply {
	return &clusterApply{cc: cc, tags: slotTags(), script: redis.NewScript(withChecks(clusterLua)), mark: redis.NewScript(markLua), touch: redis.NewScript(touchLua), intent: redis.NewScript(intentLua),
		check:    redis.NewScript(strings.Replace(withChecks(clusterLua), "#!lua\n", "#!lua flags=no-writes\n", 1)),
		replicas: map[string]replicaCount{}, deadWritten: map[string]bool{}}
}

// slotShare is one hash slot's share of a batch.
type slotShare struct {
	record  string
	writes  []int                // writes with effects in the slot, in batch order
	effects map[int][]sdk.Effect // each write's effects in the slot
	done    map[int]bool         // writes recorded in the slot already
	// Set while the share is run: the plan and which write each of the
	// plan's writes is; fresh while they reflect the refused and done
	// writes (planning every slot of a batch is the host's main cost).
	plan  *plan
	of    []int
	fresh bool
	// plainKey is set when every effect in the slot adds set members to
	// this one key: Redis adds a member once however often it is sent, so
	// the share is written with plain SADDs of members, without plan,
	// script or record, and a redo is exact without one.
	plainKey string
	members  []string
}

// clusterRun is one attempt to apply a batch on a cluster.
type clusterRun struct {
	a      *Applier
	c      *clusterApply
	writes []Write
	now    time.Time // the host's clock: dead letters' time, due cleanups
	// deadline is Redis' clock (TIME) when the markers were read, plus
	// attemptWindow: cluster.lua refuses to write past it. stop is the
	// same on the host's monotonic clock, to give up early.
	deadline time.Time
	stop     time.Time
	shares   map[int]*slotShare
	slotsOf  map[int][]int // write → the slots of its effects
	recorded map[int][]int // write → the slots whose record holds it
	landed   map[int]bool
	refused  map[int]leftOut
	// differs holds the writes whose plugin answered otherwise than the
	// intent stored first (intent.lua): refused everywhere.
	differs map[int]string
}

// intentField is the order hash field that holds the intent of the pair
// whose done marker is marker; mark.lua deletes it with the marker's set.
func intentField(marker string) string {
	return keyspace.IntentField(strings.TrimPrefix(marker, keyspace.DonePrefix))
}

// listNeedle is what intent.lua looks for in an order's list of done
// plugins to tell that the pair whose done marker is marker is done.
func listNeedle(marker string) string { return keyspace.DoneListNeedle(donePlugin(marker)) }

// intentDigest is a digest of a pair's answer: the same effects in the same
// order give the same digest on every host.
func intentDigest(effects []sdk.Effect) string {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	for _, e := range effects {
		put(e.Command)
		put(e.Key)
		binary.BigEndian.PutUint64(n[:], uint64(len(e.Args)))
		h.Write(n[:])
		for _, a := range e.Args {
			put(a)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (a *Applier) applyCluster(ctx context.Context, b Batch, live []int, res Result) (Result, error) {
	c := a.cluster
	now := a.now()
	r := &clusterRun{a: a, c: c, writes: b.Writes, now: now,
		shares: map[int]*slotShare{}, slotsOf: map[int][]int{}, recorded: map[int][]int{}, landed: map[int]bool{}, refused: map[int]leftOut{}}
	defer r.releasePlans()

	live, err := r.readMarkers(ctx, live, &res)
	if err != nil {
		return Result{}, err
	}
	r.share(live)
	for w, reason := range r.differs {
		r.refuse(w, leftOut{Refused, reason})
	}
	if err := r.check(ctx); err != nil {
		return Result{}, err
	}
	if err := r.findLanded(ctx); err != nil {
		return Result{}, err
	}
	if err := r.findVanishedLanded(ctx, &res); err != nil {
		return Result{}, err
	}
	if err := r.write(ctx); err != nil {
		return Result{}, err
	}
	if err := r.crash("dead"); err != nil {
		return Result{}, err
	}

	dead := append([]deadletter.Entry(nil), b.DeadLetters...)
	for _, w := range live {
		out, ok := r.refused[w]
		if !ok {
			res.Statuses[w] = Applied
			continue
		}
		if r.landed[w] {
			out.reason = "partly applied, " + out.reason + "; the effects in other hash slots landed and replaying applies the rest once"
		}
		res.Statuses[w], res.Reasons[w] = out.status, out.reason
		wr := b.Writes[w]
		dead = append(dead, deadletter.Entry{OrderID: wr.OrderID, Channel: wr.Channel, Plugin: wr.Plugin, Reason: out.reason, Attempts: 1, OrderKey: wr.OrderKey})
	}
	for w, st := range res.Statuses {
		if st == Vanished {
			wr := b.Writes[w]
			dead = append(dead, deadletter.Entry{OrderID: wr.OrderID, Channel: wr.Channel, Plugin: wr.Plugin, Reason: res.Reasons[w], Attempts: 1, OrderKey: wr.OrderKey})
		}
	}
	// Dead letters before the markers: a host dying between the two
	// writes a dead letter twice, never a dead marker without its letter.
	if err := r.deadLetters(ctx, dead); err != nil {
		return Result{}, err
	}
	if err := r.crash("mark"); err != nil {
		return Result{}, err
	}
	if err := r.markOrders(ctx, live, dead, &res); err != nil {
		return Result{}, err
	}
	if err := r.crash("settle"); err != nil {
		return Result{}, err
	}
	if err := r.settle(ctx, b); err != nil {
		return Result{}, err
	}
	if err := r.crash("cleanup"); err != nil {
		return Result{}, err
	}
	r.scheduleCleanups(live, res)
	c.mu.Lock()
	clear(c.deadWritten)
	c.mu.Unlock()
	res.DeadLetters = dead
	return res, nil
}

// releasePlans gives back the shares' plans, once no command laid out
// from them is running.
func (r *clusterRun) releasePlans() {
	for _, sh := range r.shares {
		if sh.plan != nil {
			r.a.releasePlan(sh.plan)
			sh.plan = nil
		}
	}
}

// errCrash is a simulated host crash (clusterApply.crashAt).
var errCrash = errors.New("simulated crash")

func (r *clusterRun) crash(stage string) error {
	if r.c.crashAt == stage {
		return fmt.Errorf("before %s: %w", stage, errCrash)
	}
	return nil
}

// readMarkers leaves out of live the writes whose marker is set (AlreadyDone)
// or whose order hash is gone (Vanished), and deletes the record entries
// that are due.
func (r *clusterRun) readMarkers(ctx context.Context, live []int, res *Result) ([]int, error) {
	var os []*markerOrder
	byKey := map[string]*markerOrder{}
	for _, w := range live {
		k := r.writes[w].OrderKey
		o := byKey[k]
		if o == nil {
			o = &markerOrder{key: k}
			byKey[k] = o
			os = append(os, o)
		}
		o.writes = append(o.writes, w)
	}
	for try := 0; ; try++ {
		live, err := r.readMarkersOnce(ctx, live, res, os)
		if try == 0 && redis.HasErrorPrefix(errors.Unwrap(err), "NOSCRIPT") {
			// A master new to this host (or promoted) lacks the script.
			err := r.c.cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
				return r.c.intent.Load(ctx, node).Err()
			})
			if err != nil {
				return nil, fmt.Errorf("load the intent script: %w", err)
			}
			continue
		}
		return live, err
	}
}

// markerOrder is one order's writes, whose markers readMarkers reads.
type markerOrder struct {
	key    string
	writes []int
	cmd    *redis.Cmd
}

func (r *clusterRun) readMarkersOnce(ctx context.Context, live []int, res *Result, os []*markerOrder) ([]int, error) {
	pipe := r.c.cc.Pipeline()
	for _, o := range os {
		argv := []any{len(o.writes)}
		for _, w := range o.writes {
			wr := r.writes[w]
			argv = append(argv, wr.Marker, intentField(wr.Marker), intentDigest(wr.Effects), listNeedle(wr.Marker))
		}
		o.cmd = r.c.intent.EvalSha(ctx, pipe, []string{o.key}, argv...)
	}
	// Redis' clock when the markers are read starts the attempt's window.
	var clock *redis.Cmd
	if len(os) > 0 {
		clock = pipe.Eval(ctx, redisTimeLua, []string{os[0].key})
	}
	due := r.c.dueCleanups(r.now)
	for _, cl := range due {
		pipe.HDel(ctx, cl.key, unpackFields(cl.fields)...)
	}
	if pipe.Len() == 0 {
		return live, nil
	}
	sent := time.Now()
	cmds, err := pipe.Exec(ctx)
	if err := orders.RoundTripError(cmds); err != nil {
		r.c.requeue(due)
		return nil, fmt.Errorf("read done markers of %d orders: %w", len(os), err)
	}
	for _, o := range os {
		if err := o.cmd.Err(); redis.HasErrorPrefix(err, "NOSCRIPT") {
			r.c.requeue(due)
			return nil, fmt.Errorf("read done markers of %d orders: %w", len(os), err)
		}
	}
	if clock != nil {
		at, err := redisTime(clock.Val())
		if err != nil {
			return nil, fmt.Errorf("read done markers of %d orders: %w", len(os), err)
		}
		// Other masters may have read their markers up to a round trip
		// before this one read its clock: the window starts that early.
		rtt := time.Since(sent)
		r.deadline = at.Add(r.c.clockShift - rtt + attemptWindow)
		r.stop = sent.Add(attemptWindow)
	}
	_ = err // a WRONGTYPE order hash is a vanished order, below
	kept := live[:0:0]
	for _, o := range os {
		vals, err := o.cmd.StringSlice()
		if err != nil || len(vals) != 1+len(o.writes) {
			vals = nil // not a hash: a vanished order
		}
		for i, w := range o.writes {
			got := "gone"
			if vals != nil {
				got = vals[i+1]
			}
			switch got {
			case "done":
				// A gone order's hash may hold its markers alone, set
				// as a tombstone (mark.lua): those pairs are done too.
				res.Statuses[w] = AlreadyDone
				continue
			case "gone":
				res.Statuses[w], res.Reasons[w] = Vanished, "order hash was deleted before its effects were applied"
				continue
			case "ok":
			default:
				if r.differs == nil {
					r.differs = map[int]string{}
				}
				r.differs[w] = "the plugin answered otherwise than when this pair was first applied (a redo after a crash, " +
					"or another host running another version or config): the first answer's effects may have landed in part; " +
					"check them before replaying"
			}
			kept = append(kept, w)
		}
	}
	slices.Sort(kept)
	return kept, nil
}

// share splits the live writes' effects by hash slot.
func (r *clusterRun) share(live []int) {
	for _, w := range live {
		for _, e := range r.writes[w].Effects {
			s := slotOf(e.Key)
			sh := r.shares[s]
			if sh == nil {
				sh = &slotShare{record: recordKey(r.c.tags[s]), effects: map[int][]sdk.Effect{}, done: map[int]bool{}}
				r.shares[s] = sh
			}
			if n := len(sh.writes); n == 0 || sh.writes[n-1] != w {
				sh.writes = append(sh.writes, w)
				r.slotsOf[w] = append(r.slotsOf[w], s)
			}
			sh.effects[w] = append(sh.effects[w], e)
		}
	}
	for _, sh := range r.shares {
		key := ""
		for _, es := range sh.effects {
			for _, e := range es {
				if e.Command != "SADD" || key != "" && e.Key != key {
					key = "\x00"
					break
				}
				key = e.Key
			}
		}
		if key != "\x00" {
			sh.plainKey = key
		}
	}
}

// plan plans each share without its refused writes and those recorded in
// it already, and returns the slots with something to apply. A write that
// conflicts with itself or another within its slot is refused everywhere.
func (r *clusterRun) plan() []int {
	for {
		var slots []int
		changed := false
		for s, sh := range r.shares {
			if sh.fresh {
				if len(sh.of) > 0 {
					slots = append(slots, s)
				}
				continue
			}
			if sh.plan != nil {
				// Its commands ran: runShares returns once they did.
				r.a.releasePlan(sh.plan)
			}
			sh.plan, sh.of, sh.members, sh.fresh = nil, nil, nil, true
			if sh.plainKey != "" {
				for _, w := range sh.writes {
					if _, out := r.refused[w]; out || sh.done[w] {
						continue
					}
					sh.of = append(sh.of, w)
					for _, e := range sh.effects[w] {
						sh.members = append(sh.members, e.Args...)
					}
				}
				if len(sh.of) > 0 {
					slots = append(slots, s)
				}
				continue
			}
			var sub []Write
			for _, w := range sh.writes {
				if _, out := r.refused[w]; out || sh.done[w] {
					continue
				}
				wr := r.writes[w]
				sub = append(sub, Write{OrderKey: sh.record, Marker: pairField(wr), Effects: sh.effects[w]})
				sh.of = append(sh.of, w)
			}
			if len(sub) == 0 {
				continue
			}
			refused := map[int]leftOut{}
			all := make([]int, len(sub))
			for i := range all {
				all[i] = i
			}
			sh.plan = r.a.newPlan(sub, all, sh.record, nil, refused)
			for i, out := range refused {
				r.refuse(sh.of[i], out)
				changed = true
			}
			slots = append(slots, s)
		}
		if !changed {
			slices.Sort(slots)
			return slots
		}
	}
}

// refuse leaves w out of every slot.
func (r *clusterRun) refuse(w int, out leftOut) {
	r.refused[w] = out
	for _, s := range r.slotsOf[w] {
		r.shares[s].fresh = false
	}
}

// check runs every share's checks until no slot finds a problem: a write
// refused in one slot is then left out of all of them.
//
// Only slots holding a pair whose effects span several slots are checked:
// a pair within one slot lands whole or not at all in its write script, and
// the pairs every order has on one key (an invoice per customer) then cost
// one script, not two.
func (r *clusterRun) check(ctx context.Context) error {
	for {
		var slots []int
		for _, s := range r.plan() {
			if slices.ContainsFunc(r.shares[s].of, func(w int) bool { return len(r.slotsOf[w]) > 1 }) {
				slots = append(slots, s)
			}
		}
		if len(slots) == 0 {
			return nil
		}
		problems, err := r.runShares(ctx, slots, "check")
		if err != nil {
			return err
		}
		if !r.takeProblems(slots, problems) {
			return nil
		}
	}
}

// findVanishedLanded looks up, for each pair whose order hash is gone,
// whether an earlier attempt landed it in a slot with a record (a crash
// before the markers, then the hash deleted), so that its dead letter says
// so instead of "before its effects were applied". Vanished orders are
// rare: this costs nothing on the common path.
func (r *clusterRun) findVanishedLanded(ctx context.Context, res *Result) error {
	type probe struct {
		w   int
		cmd *redis.BoolCmd
	}
	var probes []probe
	pipe := r.c.cc.Pipeline()
	for w, st := range res.Statuses {
		if st != Vanished {
			continue
		}
		seen := map[int]bool{}
		for _, e := range r.writes[w].Effects {
			if s := slotOf(e.Key); !seen[s] {
				seen[s] = true
				probes = append(probes, probe{w, pipe.HExists(ctx, recordKey(r.c.tags[s]), pairField(r.writes[w]))})
			}
		}
	}
	if len(probes) == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("read the records of vanished orders' pairs: %w", err)
	}
	for _, p := range probes {
		if p.cmd.Val() {
			res.Reasons[p.w] = "order hash was deleted after an earlier attempt landed effects of this pair " +
				"(the hash slots' records hold it); nothing more was applied"
		}
	}
	return nil
}

// findLanded looks up, for each pair the check phase refused that has
// effects in other slots, whether an earlier attempt landed it in one of
// them (it is then partly applied). Refusals are rare: this costs nothing
// on the common path.
func (r *clusterRun) findLanded(ctx context.Context) error {
	type probe struct {
		w   int
		cmd *redis.BoolCmd
	}
	var probes []probe
	pipe := r.c.cc.Pipeline()
	for w := range r.refused {
		if len(r.slotsOf[w]) < 2 {
			continue
		}
		for _, s := range r.slotsOf[w] {
			probes = append(probes, probe{w, pipe.HExists(ctx, r.shares[s].record, pairField(r.writes[w]))})
		}
	}
	if len(probes) == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("read the records of %d refused pairs: %w", len(r.refused), err)
	}
	for _, p := range probes {
		if p.cmd.Val() {
			r.landed[p.w] = true
		}
	}
	return nil
}

// write writes every share, re-planning the slots that found a pair
// recorded already (another host applied it meanwhile) or, rarely, a value
// or type changed since the check.
func (r *clusterRun) write(ctx context.Context) error {
	slots := r.plan()
	for len(slots) > 0 {
		if time.Now().After(r.stop) {
			return errLate
		}
		crash := r.c.crashAt == "write" && len(slots) > 1
		if crash {
			slots = slots[:len(slots)/2]
		}
		problems, err := r.runShares(ctx, slots, "write")
		if err == nil && crash {
			err = r.crash("write")
		}
		if err != nil {
			return err
		}
		var again []int
		for i, s := range slots {
			if problems[i] == nil {
				sh := r.shares[s]
				sh.fresh = false
				for _, w := range sh.of {
					sh.done[w] = true
					r.landed[w] = true
					if sh.plainKey == "" {
						r.recorded[w] = append(r.recorded[w], s)
					}
				}
				continue
			}
			again = append(again, s)
		}
		r.takeProblems(again, problemsOf(slots, again, problems))
		planned := map[int]bool{}
		for _, s := range r.plan() {
			planned[s] = true
		}
		slots = slots[:0:0]
		for _, s := range again {
			if planned[s] {
				slots = append(slots, s)
			}
		}
	}
	return nil
}

func problemsOf(slots, pick []int, problems [][]string) [][]string {
	out := make([][]string, 0, len(pick))
	for _, s := range pick {
		out = append(out, problems[slices.Index(slots, s)])
	}
	return out
}

// takeProblems applies the scripts' problems of slots and reports whether
// there were any.
func (r *clusterRun) takeProblems(slots []int, problems [][]string) bool {
	any := false
	for i, s := range slots {
		if problems[i] == nil {
			continue
		}
		any = true
		sh := r.shares[s]
		if sh.plainKey != "" {
			// One problem: the key is not a set ("plain <type>").
			have := strings.TrimPrefix(problems[i][0], "plain ")
			reason := fmt.Sprintf("refused effect: key %s holds a %s, but its effects need a set", sh.plainKey, have)
			for _, w := range sh.of {
				if _, ok := r.refused[w]; !ok {
					r.refuse(w, leftOut{Refused, reason})
				}
			}
			continue
		}
		out := map[int]leftOut{}
		// leaveOut cannot fail here: runShares checked the problems.
		_ = r.a.leaveOut(sh.plan, problems[i], out)
		for j, lo := range out {
			w := sh.of[j]
			if lo.status == AlreadyDone {
				sh.fresh = false
				sh.done[w] = true
				r.landed[w] = true
				r.recorded[w] = append(r.recorded[w], s)
				continue
			}
			if _, ok := r.refused[w]; !ok {
				r.refuse(w, lo)
			}
		}
	}
	return any
}

// runShares runs cluster.lua over the planned shares of slots, each on its
// slot's master, and returns each one's problems (nil when it passed).
func (r *clusterRun) runShares(ctx context.Context, slots []int, mode string) ([][]string, error) {
	nowUS := strconv.FormatInt(r.now.UnixMicro(), 10)
	deadlineUS := strconv.FormatInt(r.deadline.UnixMicro(), 10)
	var cmds []nodeCmd
	first := make([]int, len(slots)) // each slot's first command in cmds
	for i, s := range slots {
		sh := r.shares[s]
		first[i] = len(cmds)
		if sh.plainKey != "" {
			if mode == "check" {
				// All Redis could refuse is the key's type.
				cmds = append(cmds, nodeCmd{key: sh.record, args: []any{"TYPE", sh.plainKey}})
				continue
			}
			for m := sh.members; len(m) > 0; {
				n := min(len(m), chunk)
				args := []any{"SADD", sh.plainKey}
				for _, a := range m[:n] {
					args = append(args, a)
				}
				cmds = append(cmds, nodeCmd{key: sh.record, args: args})
				m = m[n:]
			}
			continue
		}
		script := r.c.script
		if mode == "check" {
			script = r.c.check
		}
		// The plan's second key (keyspace.EmptyKey, for apply.lua's type
		// checks) is in another slot: cluster.lua takes the record in its
		// place.
		keys := slices.Clone(sh.plan.keys)
		keys[1] = sh.record
		cmds = append(cmds, nodeCmd{key: sh.record, script: script, keys: keys, argv: encodeShare(sh.plan, mode, nowUS, deadlineUS)})
	}
	wait := 0
	if mode == "write" {
		wait = r.a.WaitReplicas
	}
	if err := r.c.run(ctx, cmds, wait, r.a.WaitTimeout); err != nil {
		return nil, fmt.Errorf("%s %d hash slots' share of the batch: %w", mode, len(slots), err)
	}
	out := make([][]string, len(slots))
	for i, s := range slots {
		sh := r.shares[s]
		end := len(cmds)
		if i+1 < len(slots) {
			end = first[i+1]
		}
		var problems []string
		for _, nc := range cmds[first[i]:end] {
			if nc.script == nil {
				// A plain command: TYPE in the check, SADD in the write,
				// whose only error here is WRONGTYPE (run failed on
				// anything else).
				have := ""
				switch {
				case mode == "check":
					if t := nc.cmd.Val(); t != "none" && t != "set" {
						have, _ = t.(string)
					}
				case nc.cmd.Err() != nil:
					t, err := r.c.cc.Type(ctx, sh.plainKey).Result()
					if err != nil {
						return nil, fmt.Errorf("type of %s: %w", sh.plainKey, err)
					}
					have = t
				}
				if have != "" && problems == nil {
					problems = []string{"plain " + have}
				}
				continue
			}
			ps, err := decode(nc.cmd.Val())
			if err != nil {
				return nil, err
			}
			if len(ps) == 1 && ps[0] == "late" {
				return nil, errLate
			}
			problems = ps
		}
		// Check the problems now, so that takeProblems cannot meet a
		// malformed one.
		if problems != nil && sh.plainKey == "" {
			if err := r.a.leaveOut(sh.plan, problems, map[int]leftOut{}); err != nil {
				return nil, fmt.Errorf("slot of %s: %w", sh.record, err)
			}
		}
		out[i] = problems
	}
	return out, nil
}

// encodeShare lays a share's plan out for cluster.lua. The plan's one
// "order" is the record, and its markers are the pairs' record fields.
func encodeShare(p *plan, mode, nowUS, deadlineUS string) []any {
	// Not the plan's args: a plan is laid out for a check, then again
	// for the write, and the first command may not have run yet.
	var a args
	a.str(&mode)
	a.str(&nowUS)
	a.str(&deadlineUS)
	// The check phase does not read the record: the write phase does, in
	// the same script as the write, and that is the read that counts.
	var names []string
	if len(p.orders) > 0 && mode == "write" {
		names = p.set(p.orders[0].set)
	}
	a.int(len(names))
	for i := range names {
		a.str(&names[i])
	}
	a.int(len(p.accs))
	for _, acc := range p.accs {
		a.int(acc.idx)
		a.boxed(acc.class.typArg())
	}
	at := a.reserve()
	a.set(at, p.checks(&a))
	at = a.reserve()
	w := opWriter{a: &a, perOp: true}
	for _, acc := range p.accs {
		p.writeOps(acc, &w)
	}
	a.set(at, w.n)
	return a.done()
}

// deadLetters appends dead to the dead-letter stream.
func (r *clusterRun) deadLetters(ctx context.Context, dead []deadletter.Entry) error {
	if len(dead) == 0 {
		return nil
	}
	nowMS := strconv.FormatInt(r.now.UnixMilli(), 10)
	ident := func(d deadletter.Entry) string {
		return strings.Join([]string{d.OrderKey, d.OrderID, d.Channel, d.Plugin, d.Reason}, "\x00")
	}
	r.c.mu.Lock()
	var todo []deadletter.Entry
	unwaited := false
	for _, d := range dead {
		waited, written := r.c.deadWritten[ident(d)]
		switch {
		case !written:
			todo = append(todo, d)
		case !waited:
			unwaited = true
		}
	}
	r.c.mu.Unlock()
	if len(todo) == 0 && !unwaited {
		return nil
	}
	cmds := make([]nodeCmd, len(todo), len(todo)+1)
	if unwaited {
		// A letter written by an earlier attempt whose WAIT failed: wait
		// for it again (run's touch before the WAIT covers it) before the
		// markers, or a failover could keep a dead marker without its letter.
		cmds = append(cmds, nodeCmd{key: r.a.dlStream, args: []any{"XLEN", r.a.dlStream}})
	}
	for i, d := range todo {
		f := append(d.Fields(), "time_ms", nowMS)
		values := make([]any, len(f))
		for j, s := range f {
			values[j] = s
		}
		args := &redis.XAddArgs{Stream: r.a.dlStream, Values: values}
		if r.a.DeadLetterMaxLen > 0 {
			args.MaxLen, args.Approx = r.a.DeadLetterMaxLen, true
		}
		cmds[i] = nodeCmd{key: r.a.dlStream, xadd: args}
	}
	err := r.c.run(ctx, cmds, r.a.WaitReplicas, r.a.WaitTimeout)
	r.c.mu.Lock()
	for i := range todo {
		if nc := cmds[i]; nc.xcmd != nil && nc.xcmd.Err() == nil {
			r.c.deadWritten[ident(todo[i])] = err == nil
		}
	}
	if err == nil {
		for k := range r.c.deadWritten {
			r.c.deadWritten[k] = true
		}
	}
	r.c.mu.Unlock()
	if err != nil {
		// The dead-letter stream holding another type is the operator's
		// to fix, as on a single node.
		if strings.Contains(err.Error(), "WRONGTYPE") {
			if have, terr := r.c.cc.Type(ctx, r.a.dlStream).Result(); terr == nil && have != "stream" && have != "none" {
				return &OwnKeyError{Key: r.a.dlStream, Have: have}
			}
		}
		if unwaited {
			return fmt.Errorf("write %d dead letters, and wait for %d written before: %w", len(todo), len(dead)-len(todo), err)
		}
		return fmt.Errorf("write %d dead letters: %w", len(todo), err)
	}
	return nil
}

// markOrders sets the done markers of the applied writes and the dead
// markers of the dead letters, in each order hash's own slot. A done marker
// another host set first makes its write AlreadyDone.
func (r *clusterRun) markOrders(ctx context.Context, live []int, dead []deadletter.Entry, res *Result) error {
	type order struct {
		key    string
		fields []string
		writes []int // per field, the write it marks done, or -1
	}
	var os []*order
	byKey := map[string]*order{}
	add := func(key, field string, w int) {
		o := byKey[key]
		if o == nil {
			o = &order{key: key}
			byKey[key] = o
			os = append(os, o)
		}
		o.fields = append(o.fields, field)
		o.writes = append(o.writes, w)
	}
	for _, w := range live {
		if res.Statuses[w] == Applied {
			add(r.writes[w].OrderKey, r.writes[w].Marker, w)
		}
	}
	for _, d := range dead {
		if d.OrderKey != "" {
			add(d.OrderKey, keyspace.DeadField(d.Plugin), -1)
		}
	}
	if len(os) == 0 {
		return nil
	}
	cmds := make([]nodeCmd, len(os))
	for i, o := range os {
		argv := []any{strconv.Itoa(len(o.fields))}
		for _, f := range o.fields {
			argv = append(argv, f)
		}
		cmds[i] = nodeCmd{key: o.key, script: r.c.mark, keys: []string{o.key}, argv: argv}
	}
	if err := r.c.run(ctx, cmds, r.a.WaitReplicas, r.a.WaitTimeout); err != nil {
		return fmt.Errorf("set the markers of %d orders: %w", len(os), err)
	}
	for i, o := range os {
		set, err := cmds[i].cmd.Int64Slice()
		if err != nil || len(set) != len(o.fields) {
			return fmt.Errorf("mark script for %s returned %v, want %d flags", o.key, cmds[i].cmd.Val(), len(o.fields))
		}
		for j, w := range o.writes {
			if w < 0 {
				continue
			}
			switch set[j] {
			case 0:
				res.Statuses[w] = AlreadyDone
			case 2:
				// Applied: its effects landed. The marker is a tombstone
				// that makes a re-send of the order done already.
				res.Reasons[w] = "order hash was gone when its effects had landed; its markers were set as a tombstone"
			case 3:
				res.Reasons[w] = "order key holds another type when its effects had landed; no marker was set"
			}
		}
	}
	return nil
}

// settle deletes the replayed dead letters and acknowledges the stream
// entries, once everything else landed.
func (r *clusterRun) settle(ctx context.Context, b Batch) error {
	if len(b.Replayed) == 0 && len(b.Acks) == 0 {
		return nil
	}
	pipe := r.c.cc.Pipeline()
	for ids := b.Replayed; len(ids) > 0; {
		n := min(len(ids), chunk)
		pipe.XDel(ctx, r.a.dlStream, ids[:n]...)
		ids = ids[n:]
	}
	streams, acks := ackStreams(b.Acks)
	for _, st := range streams {
		for ids := acks[st]; len(ids) > 0; {
			n := min(len(ids), chunk)
			pipe.XAck(ctx, st, r.a.AckGroup, ids[:n]...)
			ids = ids[n:]
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("delete %d replayed dead letters and acknowledge %d entries: %w", len(b.Replayed), len(b.Acks), err)
	}
	return nil
}
