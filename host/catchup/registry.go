package catchup

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/host/redisconn"
)

const markingPrefix = "marking:"

// markHistory sets the history markers ARGV (field, token)* on each
// existing hash among KEYS; it never creates a hash, so a key deleted since
// SCAN saw it stays deleted.
var markHistory = redis.NewScript(`
for _, k in ipairs(KEYS) do
  if redis.call('TYPE', k)['ok'] == 'hash' then
    for i = 1, #ARGV, 2 do
      redis.call('HSETNX', k, ARGV[i], ARGV[i + 1])
    end
  end
end
return #KEYS`)

// swapState sets field ARGV[1] of KEYS[1] to ARGV[3] if it holds ARGV[2]
// ("" for absent), and returns what it holds afterwards.
var swapState = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if (v or '') == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return ARGV[3]
end
return v`)

// Registry decides what is new for each plugin.
type Registry struct {
	rdb     redis.UniversalClient
	scanner *Scanner
	// Now is the clock for new tokens.
	Now func() time.Time
	// afterPage, when set, is called after each page of marking (tests
	// interrupt a marking with it).
	afterPage func()
}

// NewRegistry returns a registry whose history marking walks scanner's hashes.
func NewRegistry(rdb redis.UniversalClient, scanner *Scanner) *Registry {
	return &Registry{rdb: rdb, scanner: scanner, Now: time.Now}
}

// Registration is what Enable found or did.
type Registration struct {
	// Token is the value a history marker must hold to count (see Want).
	Token string
	// Fresh is true when this call registered the plugin and marked the
	// orders stored until then as its history.
	Fresh bool
	// Voided is true when this call found a marking that had been
	// interrupted and registered the plugin without history instead.
	Voided bool
}

// Enable makes sure plugin is registered; see EnableAll.
func (r *Registry) Enable(ctx context.Context, plugin string) (Registration, error) {
	regs, err := r.EnableAll(ctx, []string{plugin})
	return regs[plugin], err
}

// EnableAll makes sure plugins are registered. The first time, every order
// already stored is marked as history for them, so catch-up does not count
// the past (backfill does, on request). The caller must already be
// subscribed: an order published during marking arrives live and is
// counted whether or not it was marked.
//
// Marking is all or nothing. Every new plugin is claimed ("marking:" +
// token) before any order is marked, the markers hold the token, and they
// count only once the registry holds the token itself. A marking that was
// interrupted (the host died) is never resumed or redone: that would mark
// orders stored since, which nobody may have counted. EnableAll registers
// the plugin with a new token instead, so the interrupted marking's markers
// count for nothing and the plugin's history is caught up like new orders:
// counting the past is the safe error, missing an order is not.
func (r *Registry) EnableAll(ctx context.Context, plugins []string) (map[string]Registration, error) {
	regs := make(map[string]Registration, len(plugins))
	var claimed []string
	for _, plugin := range plugins {
		reg, claim, err := r.claim(ctx, plugin)
		if err != nil {
			return regs, err
		}
		if claim != "" {
			claimed = append(claimed, plugin)
			reg = Registration{Token: claim, Fresh: true}
		}
		regs[plugin] = reg
	}
	if len(claimed) == 0 {
		return regs, nil
	}
	if err := r.mark(ctx, claimed, regs); err != nil {
		return regs, err
	}
	for _, plugin := range claimed {
		token := regs[plugin].Token
		got, err := r.swap(ctx, plugin, markingPrefix+token, token)
		if err != nil {
			return regs, err
		}
		if got != token { // another process took our marking for an interrupted one
			regs[plugin] = Registration{Token: got}
		}
	}
	return regs, nil
}

// claim registers plugin if it is not yet: it returns the token to mark
// with in claim, or the registration in force.
func (r *Registry) claim(ctx context.Context, plugin string) (reg Registration, claim string, err error) {
	for {
		state, err := r.rdb.HGet(ctx, keyspace.RegistryKey, plugin).Result()
		switch {
		case errors.Is(err, redis.Nil):
			state = ""
		case err != nil:
			return Registration{}, "", fmt.Errorf("read %s: %w", keyspace.RegistryKey, err)
		}
		var to string
		switch {
		case state == "":
			to = markingPrefix + itoa(r.Now().UnixMilli())
		case strings.HasPrefix(state, markingPrefix):
			// Never the interrupted token, so that its markers count for nothing.
			old, _ := strconv.ParseInt(strings.TrimPrefix(state, markingPrefix), 10, 64)
			to = itoa(max(r.Now().UnixMilli(), old+1))
		default:
			return Registration{Token: state}, "", nil
		}
		got, err := r.swap(ctx, plugin, state, to)
		if err != nil {
			return Registration{}, "", err
		}
		if got != to {
			continue // another process changed it first
		}
		if state == "" {
			return Registration{}, strings.TrimPrefix(to, markingPrefix), nil
		}
		return Registration{Token: to, Voided: true}, "", nil
	}
}

func (r *Registry) swap(ctx context.Context, plugin, from, to string) (string, error) {
	got, err := swapState.Run(ctx, r.rdb, []string{keyspace.RegistryKey}, plugin, from, to).Text()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("register plugin %s: %w", plugin, err)
	}
	return got, nil
}

// mark sets each plugin's history marker, holding its token, on every
// order hash: one pass for all of them.
func (r *Registry) mark(ctx context.Context, plugins []string, regs map[string]Registration) error {
	args := make([]any, 0, 2*len(plugins))
	for _, p := range plugins {
		args = append(args, keyspace.HistoryField(p), regs[p].Token)
	}
	return redisconn.ForEachMaster(ctx, r.rdb, func(ctx context.Context, node redis.UniversalClient) error {
		return r.markNode(ctx, node, plugins, args)
	})
}

// markNode is mark on one node (all of Redis but on a cluster, where a
// script may touch one hash slot only: there each key gets its own call,
// pipelined, one round trip per page).
func (r *Registry) markNode(ctx context.Context, node redis.UniversalClient, plugins []string, args []any) error {
	cluster := redisconn.Cluster(r.rdb)
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, globEscape(r.scanner.prefix)+"*", r.scanner.Count).Result()
		if err != nil {
			return fmt.Errorf("mark history for plugins %v: scan: %w", plugins, err)
		}
		switch {
		case len(keys) == 0:
		case cluster:
			pipe := node.Pipeline()
			for _, k := range keys {
				markHistory.Eval(ctx, pipe, []string{k}, args...) // EVALSHA would fail NOSCRIPT in a pipeline
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("mark history for plugins %v: %w", plugins, err)
			}
		default:
			if err := markHistory.Run(ctx, node, keys, args...).Err(); err != nil {
				return fmt.Errorf("mark history for plugins %v: %w", plugins, err)
			}
		}
		if r.afterPage != nil {
			r.afterPage()
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// itoa is strconv.FormatInt for the registry's tokens.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
