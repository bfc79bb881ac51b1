package catchup

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/orders"
)

// RegistryKey is the hash that records, per plugin, when it was first
// enabled: "marking" while its history is being marked, then the time in
// unix milliseconds.
const RegistryKey = orders.MarkerPrefix + "plugins"

const marking = "marking"

// markHistory sets a history marker on each existing hash among KEYS; it
// never creates a hash, so a key deleted since SCAN saw it stays deleted.
var markHistory = redis.NewScript(`
for _, k in ipairs(KEYS) do
  if redis.call('TYPE', k)['ok'] == 'hash' then
    redis.call('HSETNX', k, ARGV[1], ARGV[2])
  end
end
return #KEYS`)

// Registry decides what is new for each plugin.
type Registry struct {
	rdb     redis.UniversalClient
	scanner *Scanner
}

// NewRegistry returns a registry whose history marking walks scanner's hashes.
func NewRegistry(rdb redis.UniversalClient, scanner *Scanner) *Registry {
	return &Registry{rdb: rdb, scanner: scanner}
}

// Enable makes sure plugin is registered. The first time, every order
// already stored is marked as history for it, so catch-up does not count
// the past (backfill does, on request); fresh is true then. The caller must
// already be subscribed: an order published during marking arrives live and
// is counted whether or not it was marked. Marking is idempotent, so an
// interrupted one is simply done again.
func (r *Registry) Enable(ctx context.Context, plugin string) (fresh bool, err error) {
	state, err := r.rdb.HGet(ctx, RegistryKey, plugin).Result()
	switch {
	case err == nil && state != marking:
		return false, nil
	case err != nil && err != redis.Nil:
		return false, fmt.Errorf("read %s: %w", RegistryKey, err)
	}
	if err := r.rdb.HSet(ctx, RegistryKey, plugin, marking).Err(); err != nil {
		return false, fmt.Errorf("register plugin %s: %w", plugin, err)
	}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	field := orders.HistoryField(plugin)
	var cursor uint64
	for {
		keys, next, err := r.rdb.Scan(ctx, cursor, r.scanner.prefix+"*", r.scanner.Count).Result()
		if err != nil {
			return false, fmt.Errorf("mark history for plugin %s: scan: %w", plugin, err)
		}
		if len(keys) > 0 {
			if err := markHistory.Run(ctx, r.rdb, keys, field, now).Err(); err != nil {
				return false, fmt.Errorf("mark history for plugin %s: %w", plugin, err)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if err := r.rdb.HSet(ctx, RegistryKey, plugin, now).Err(); err != nil {
		return false, fmt.Errorf("register plugin %s: %w", plugin, err)
	}
	return true, nil
}
