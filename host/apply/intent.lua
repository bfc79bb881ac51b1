#!lua
-- Reads one order's done markers and stores, for each pair not done yet,
-- its intent: a digest of the plugin's answer (cluster.go). The first answer
-- stored wins until the pair is marked (mark.lua deletes it), so that a redo
-- or another host whose plugin answers differently is told, before it
-- writes anything, instead of landing a second answer in other hash slots.
-- It calls only TYPE, HGET and HSETNX, which the host's ACL allows.
-- KEYS[1] is the order hash; ARGV: #pairs, (marker, intent_field, digest)*.
-- Returns { '1' when the order hash holds the order (its ts), else '0', then
-- per pair: 'done' (marker set), 'gone' (no order, nothing stored), 'ok'
-- (the intent is this digest), or the other digest stored first }.
local have = redis.call('TYPE', KEYS[1])['ok']
if have ~= 'hash' and have ~= 'none' then
  return { '0' }
end
local present = have == 'hash' and redis.call('HGET', KEYS[1], 'ts') ~= false
local out = { present and '1' or '0' }
for p = 0, tonumber(ARGV[1]) - 1 do
  local marker, field, digest = ARGV[2 + 3 * p], ARGV[3 + 3 * p], ARGV[4 + 3 * p]
  if have == 'hash' and redis.call('HGET', KEYS[1], marker) then
    out[#out + 1] = 'done'
  elseif not present then
    out[#out + 1] = 'gone'
  elseif redis.call('HSETNX', KEYS[1], field, digest) == 1 then
    out[#out + 1] = 'ok'
  else
    local first = redis.call('HGET', KEYS[1], field)
    if first == digest then
      out[#out + 1] = 'ok'
    else
      out[#out + 1] = first
    end
  end
end
return out
