package redistest

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// storeCounted stores ARGV[2] orders from number ARGV[1] under the prefix
// ARGV[3], with every done-marker field of ARGV[4:] set.
var storeCounted = redis.NewScript(`
local from, n, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = from, from + n - 1 do
  local args = { prefix .. string.format('h%09d', i), 'ts', tostring(1627000000 + i % 1400000), 'qty', tostring(1 + i % 8),
    'cost', '12.50', 'event', 'Judo', 'who', 'w' .. (i % 5000) }
  for j = 4, #ARGV do
    args[#args + 1] = ARGV[j]
    args[#args + 1] = '1700000000000000'
  end
  redis.call('HSET', unpack(args))
end
return n`)

// CountedChunk is how many orders StoreCounted stores per script call.
const CountedChunk = 20000

// StoreCounted stores orders from..from+n-1 under prefix (ids h000000000,
// h000000001, …), each already counted: every field of doneFields is set.
// It takes one script call per CountedChunk orders, so a benchmark can build
// a history of millions in seconds.
func StoreCounted(ctx context.Context, rdb redis.Scripter, prefix string, from, n int, doneFields []string) error {
	for at := from; at < from+n; at += CountedChunk {
		args := []any{at, min(CountedChunk, from+n-at), prefix}
		for _, f := range doneFields {
			args = append(args, f)
		}
		if err := storeCounted.Run(ctx, rdb, nil, args...).Err(); err != nil {
			return fmt.Errorf("store counted orders %d..%d: %w", at, at+CountedChunk-1, err)
		}
	}
	return nil
}
