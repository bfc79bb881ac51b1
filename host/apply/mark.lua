#!lua
-- Sets the done and dead markers of one order once every hash slot's share
-- of its effects landed (cluster.go). A marker set already keeps its time.
-- An order hash that is gone (lost in a failover, or deleted, after the
-- effects landed) gets its done markers all the same, as a tombstone: a
-- producer that re-sends the order stores its fields next to them, and the
-- re-sent order is then done already, not counted again. Its dead markers
-- are not written: nothing of those pairs landed, and a deleted order's
-- dead letter must not leave a hash behind.
-- KEYS[1] is the order hash; ARGV: #fields, field*. The markers' time is
-- Redis' own (TIME, in microseconds), which the sweep compares with Redis'.
-- Setting a plugin's done or dead marker deletes its pair's intent
-- (intent.lua): the pair is settled, and a replay may answer anew.
-- Returns per field 1 when set (or, for a dead marker, when the hash is
-- gone), 0 when it was set already, 2 when set in a tombstone (the hash was
-- gone), 3 when not set because the key holds another type.
local out = {}
local intents = {}
local have = redis.call('TYPE', KEYS[1])['ok']
local t = redis.call('TIME')
local now = t[1] .. string.format('%06d', tonumber(t[2]))
for f = 2, 1 + tonumber(ARGV[1]) do
  if have == 'none' and string.sub(ARGV[f], 1, 15) ~= 'eventhost:done:' then
    out[#out + 1] = 1
  elseif have == 'none' then
    redis.call('HSET', KEYS[1], ARGV[f], now)
    out[#out + 1] = 2
  elseif have ~= 'hash' then
    out[#out + 1] = 3
  else
    out[#out + 1] = redis.call('HSETNX', KEYS[1], ARGV[f], now)
    local plugin = string.match(ARGV[f], '^eventhost:done:(.*)$') or string.match(ARGV[f], '^eventhost:dead:(.*)$')
    if plugin then
      intents[#intents + 1] = 'eventhost:intent:' .. plugin
    end
  end
end
if #intents > 0 then
  redis.call('HDEL', KEYS[1], unpack(intents))
end
return out
