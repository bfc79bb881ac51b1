#!lua
-- Sets the done and dead markers of one order once every hash slot's share
-- of its effects landed (cluster.go). A marker set already keeps its time;
-- an order hash that is gone is not created again.
-- KEYS[1] is the order hash; ARGV: now_us, #fields, field*.
-- Returns per field 1, or 0 when the marker was set already.
local out = {}
local gone = redis.call('TYPE', KEYS[1])['ok'] ~= 'hash'
for f = 3, 2 + tonumber(ARGV[2]) do
  if gone then
    out[#out + 1] = 1
  else
    out[#out + 1] = redis.call('HSETNX', KEYS[1], ARGV[f], ARGV[1])
  end
end
return out
