#!lua
-- Reads one order's done markers and stores, for each pair not done yet,
-- its intent: a digest of the plugin's answer (cluster.go). The first answer
-- stored wins until the pair is marked (mark.lua deletes it), so that a redo
-- or another host whose plugin answers differently is told, before it
-- writes anything, instead of landing a second answer in other hash slots.
-- It calls only HMGET and HSETNX, which the host's ACL allows.
-- A pair is also done when the order's list of done plugins
-- (keyspace.DoneListField, written by a host on one Redis) holds its
-- needle (keyspace.DoneListNeedle; "" when no list names the plugin).
-- KEYS[1] is the order hash; ARGV: #pairs, (marker, intent_field, digest,
-- needle)*.
-- Returns { '1' when the order hash holds the order (its ts), else '0', then
-- per pair: 'done' (marker set), 'gone' (no order, nothing stored), 'ok'
-- (the intent is this digest), or the other digest stored first }.
local n = tonumber(ARGV[1])
local fields = { 'ts', 'eventhost:done' }
for p = 0, n - 1 do
  fields[#fields + 1] = ARGV[2 + 4 * p]
  fields[#fields + 1] = ARGV[3 + 4 * p]
end
local v = redis.pcall('HMGET', KEYS[1], unpack(fields))
if v.err then
  return { '0' } -- not a hash: a vanished order
end
local present = v[1] ~= false
-- The list starts with the time, with no space before it: never a name.
local list = v[2] and (v[2] .. ' ')
local out = { present and '1' or '0' }
for p = 0, n - 1 do
  local done, first, digest = v[3 + 2 * p], v[4 + 2 * p], ARGV[4 + 4 * p]
  local needle = ARGV[5 + 4 * p]
  if not done and list and needle ~= '' then
    done = string.find(list, needle, 1, true)
  end
  if done then
    out[#out + 1] = 'done'
  elseif not present then
    out[#out + 1] = 'gone'
  elseif not first then
    redis.call('HSETNX', KEYS[1], ARGV[3 + 4 * p], digest)
    out[#out + 1] = 'ok'
  elseif first == digest then
    out[#out + 1] = 'ok'
  else
    out[#out + 1] = first
  end
end
return out
