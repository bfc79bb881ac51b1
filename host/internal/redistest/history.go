package redistest

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/keyspace"
)

// storeCounted stores ARGV[2] orders from number ARGV[1] under the prefix
// ARGV[3], with the (field, value) pairs of ARGV[4:] set: their done markers.
var storeCounted = redis.NewScript(`
local from, n, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = from, from + n - 1 do
  local args = { prefix .. string.format('h%09d', i), 'ts', tostring(1627000000 + i % 1400000), 'qty', tostring(1 + i % 8),
    'cost', '12.50', 'event', 'Judo', 'who', 'w' .. (i % 5000) }
  for j = 4, #ARGV do args[#args + 1] = ARGV[j] end
  redis.call('HSET', unpack(args))
end
return n`)

// CountedChunk is how many orders StoreCounted stores per script call.
const CountedChunk = 20000

// StoreCounted stores orders from..from+n-1 under prefix (ids h000000000,
// h000000001, …), each already counted by every one of plugins: marked done
// as a host marks the orders one batch applies for them all (a list of the
// plugins, or a field each when that does not fit; see keyspace.DoneList).
// It takes one script call per CountedChunk orders, so a benchmark can build
// a history of millions in seconds.
func StoreCounted(ctx context.Context, rdb redis.Scripter, prefix string, from, n int, plugins []string) error {
	var marks []any
	if list, ok := keyspace.DoneList(1700000000000, plugins); ok {
		marks = []any{keyspace.DoneListField, list}
	} else {
		for _, p := range plugins {
			marks = append(marks, keyspace.DoneField(p), "1700000000000000")
		}
	}
	for at := from; at < from+n; at += CountedChunk {
		args := []any{at, min(CountedChunk, from+n-at), prefix}
		args = append(args, marks...)
		if err := storeCounted.Run(ctx, rdb, nil, args...).Err(); err != nil {
			return fmt.Errorf("store counted orders %d..%d: %w", at, at+CountedChunk-1, err)
		}
	}
	return nil
}
