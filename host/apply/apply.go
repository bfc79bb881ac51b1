// Package apply writes the outcome of one batch to Redis in a single atomic
// step: every plugin's effects for every order, each (plugin, order) pair's
// done marker, and the batch's dead letters. A pair whose marker is already
// set is skipped, which makes redelivered orders harmless.
package apply

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/sdk"
)

//go:embed apply.lua
var applyLua string

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
	Acks []string
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
	// written, the caller dead-letters it.
	Vanished Status = -1
)

// PartialFailure is an effect Redis refused at run time (for example HINCRBY
// on a field that holds text). The write's other effects did land: Redis
// scripts do not roll back.
type PartialFailure struct {
	Write  int
	Effect int
	Err    string
}

// Result reports the fate of each Write of a Batch, in order.
type Result struct {
	Statuses []Status
	Failures []PartialFailure
}

// TypeConflictError is returned, with nothing written, when a key an effect
// needs already holds another Redis type.
type TypeConflictError struct {
	Key, Have, Want string
}

func (e *TypeConflictError) Error() string {
	return fmt.Sprintf("key %s holds a %s, but effects need a %s", e.Key, e.Have, e.Want)
}

// Applier applies batches.
type Applier struct {
	rdb       redis.UniversalClient
	script    *redis.Script
	dlStream  string
	dlMaxLen  int64
	ackStream string
	ackGroup  string
	now       func() time.Time
}

// New returns an Applier writing dead letters to stream (trimmed to about
// maxLen entries when maxLen > 0).
func New(rdb redis.UniversalClient, stream string, maxLen int64) *Applier {
	return &Applier{rdb: rdb, script: redis.NewScript(applyLua), dlStream: stream, dlMaxLen: maxLen, now: time.Now}
}

// AckTo makes the applier acknowledge a batch's Acks on stream for group.
func (a *Applier) AckTo(stream, group string) *Applier {
	a.ackStream, a.ackGroup = stream, group
	return a
}

// Apply writes b atomically. On error nothing of b was written.
func (a *Applier) Apply(ctx context.Context, b Batch) (Result, error) {
	if b.empty() {
		return Result{}, nil
	}
	if len(b.Acks) > 0 && a.ackStream == "" {
		return Result{}, errors.New("apply: batch acknowledges stream entries, but no stream was set with AckTo")
	}
	keys, argv, err := a.encode(b)
	if err != nil {
		return Result{}, err
	}
	raw, err := a.script.Run(ctx, a.rdb, keys, argv...).Result()
	if err != nil {
		if msg, ok := strings.CutPrefix(err.Error(), "WRONGTYPE-CONFLICT "); ok {
			parts := strings.SplitN(msg, " ", 3)
			if len(parts) == 3 {
				return Result{}, &TypeConflictError{Key: parts[2], Have: parts[0], Want: parts[1]}
			}
		}
		return Result{}, fmt.Errorf("apply batch of %d writes, %d dead letters and %d acks: %w", len(b.Writes), len(b.DeadLetters), len(b.Acks), err)
	}
	return decode(raw, len(b.Writes))
}

// encode lays b out for apply.lua: keys deduplicated into KEYS (KEYS[1] is
// the dead-letter stream), everything else flat in ARGV.
func (a *Applier) encode(b Batch) ([]string, []any, error) {
	keys := []string{a.dlStream}
	index := map[string]int{a.dlStream: 1}
	// The dead-letter stream is checked too: a key of another type there
	// would fail the XADD after the effects had landed.
	want := map[string]string{a.dlStream: "stream"}
	ackStream := a.dlStream
	if len(b.Acks) > 0 {
		ackStream = a.ackStream
		want[ackStream] = "stream"
	}
	keys = append(keys, ackStream)
	if _, ok := index[ackStream]; !ok {
		index[ackStream] = 2
	}
	keyIndex := func(k string) string {
		i, ok := index[k]
		if !ok {
			keys = append(keys, k)
			i = len(keys)
			index[k] = i
		}
		return strconv.Itoa(i)
	}
	n := 4
	for _, w := range b.Writes {
		n += 3
		for _, e := range w.Effects {
			n += 3 + len(e.Args)
		}
	}
	body := make([]any, 0, n+len(b.DeadLetters)*12)
	body = append(body, strconv.Itoa(len(b.Writes)))
	for _, w := range b.Writes {
		body = append(body, keyIndex(w.OrderKey), w.Marker, strconv.Itoa(len(w.Effects)))
		for _, e := range w.Effects {
			t := policy.KeyType(e.Command)
			if t == "" {
				return nil, nil, fmt.Errorf("effect %s %s: command not allowed", e.Command, e.Key)
			}
			if prev, ok := want[e.Key]; ok && prev != t {
				return nil, nil, &TypeConflictError{Key: e.Key, Have: prev, Want: t}
			}
			want[e.Key] = t
			body = append(body, e.Command, keyIndex(e.Key), strconv.Itoa(len(e.Args)))
			for _, arg := range e.Args {
				body = append(body, arg)
			}
		}
	}
	body = append(body, strconv.Itoa(len(b.DeadLetters)))
	now := a.now()
	nowMS := strconv.FormatInt(now.UnixMilli(), 10)
	for _, d := range b.DeadLetters {
		orderIdx := "0"
		if d.OrderKey != "" {
			orderIdx = keyIndex(d.OrderKey)
		}
		f := append(d.Fields(), "time_ms", nowMS)
		body = append(body, orderIdx, orders.DeadField(d.Plugin), strconv.Itoa(len(f)))
		for _, s := range f {
			body = append(body, s)
		}
	}
	body = append(body, strconv.Itoa(len(b.Replayed)))
	for _, id := range b.Replayed {
		body = append(body, id)
	}
	body = append(body, strconv.Itoa(len(b.Acks)))
	for _, id := range b.Acks {
		body = append(body, id)
	}
	argv := make([]any, 0, 4+2*len(want)+len(body))
	// The done marker holds the apply time in microseconds: the latency
	// benchmark reads it, and it tells a person when an order was counted.
	argv = append(argv, strconv.FormatInt(now.UnixMicro(), 10), strconv.FormatInt(a.dlMaxLen, 10), a.ackGroup, strconv.Itoa(len(want)))
	for k, t := range want {
		argv = append(argv, strconv.Itoa(index[k]), t)
	}
	return keys, append(argv, body...), nil
}

func decode(raw any, writes int) (Result, error) {
	parts, ok := raw.([]any)
	if !ok || len(parts) != 2 {
		return Result{}, fmt.Errorf("apply script returned %T, want a pair", raw)
	}
	statuses, _ := parts[0].([]any)
	if len(statuses) != writes {
		return Result{}, fmt.Errorf("apply script reported %d statuses for %d writes", len(statuses), writes)
	}
	var res Result
	res.Statuses = make([]Status, writes)
	for i, s := range statuses {
		n, _ := s.(int64)
		res.Statuses[i] = Status(n)
	}
	failures, _ := parts[1].([]any)
	for _, f := range failures {
		s, _ := f.(string)
		fields := strings.SplitN(s, ":", 3)
		if len(fields) != 3 {
			return Result{}, errors.New("apply script returned a malformed failure: " + s)
		}
		w, _ := strconv.Atoi(fields[0])
		e, _ := strconv.Atoi(fields[1])
		res.Failures = append(res.Failures, PartialFailure{Write: w - 1, Effect: e - 1, Err: fields[2]})
	}
	return res, nil
}
