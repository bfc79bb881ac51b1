#!lua
-- Applies one hash slot's share of a batch on a Redis Cluster, or checks
-- it. cluster.go lays it out; the checks are apply.lua's.
--
-- KEYS[1] is the slot's idempotency record, a hash whose fields name the
-- (order, plugin) pairs whose effects already landed in this slot (value:
-- the time they landed, in microseconds of Redis' clock); KEYS[2] and KEYS[3] are the
-- record again (the plan numbers keys as apply.lua's). Other KEYS are the
-- keys the effects write, all in the same slot.
-- ARGV:
--   mode ('check' or 'write'), unused, deadline_us (Redis' clock, from
--   the TIME the host read when it read the markers),
--   #pairs, pair*                            the pairs whose effects are in the ops
--                                            (none in mode 'check': the write reads the record)
--   #types, (key_idx, type)*                 every key written, with the type it needs
--   #checks, (key_idx, kind, #fields, (field, #steps, (step, value)*)*)*
--                                            as in apply.lua
--   #ops, (command, key_idx, argc, arg*)*    the pairs' coalesced effects
-- Returns {1} once checked (mode 'check') or written ('write'), or
-- {0, problem*} with nothing written, where a problem is one of
--   'done 1 <pair>'         pair number <pair> (1-based) is in the record
--   'type <key> <have>'     the key holds another type
--   'value <n> <why>'       checked field number n holds a value the writes
--                           cannot use
--   'late'                  Redis' clock is past deadline_us: the host gave
--                           up on this attempt, and a write now could land
--                           after the host forgot the record (see cluster.go)
local mode = ARGV[1]
local i = 4
local problems = {}

local function note(p) problems[#problems + 1] = p end

local t = redis.call('TIME')
if tonumber(t[1]) * 1000000 + tonumber(t[2]) > tonumber(ARGV[3]) then
  return { 0, 'late' }
end
-- The record's times are Redis' own, so that only the Redis nodes' clocks
-- matter (the sweep compares them with Redis' TIME).
local now = t[1] .. string.format('%06d', tonumber(t[2]))

-- @checks

-- unpack() is bounded by Lua's C stack: send long lists in chunks.
local function chunks(list, size, fn)
  for c = 1, #list, size do
    fn(unpack(list, c, math.min(c + size - 1, #list)))
  end
end

-- 1. The record: which pairs landed here already.
local npairs = tonumber(ARGV[i]); i = i + 1
local pairs_at = i
if npairs > 0 then
  local have = redis.call('TYPE', KEYS[1])['ok']
  if have ~= 'none' and have ~= 'hash' then
    note('type 1 ' .. have)
  else
    local names = {}
    for k = 1, npairs do names[k] = ARGV[i + k - 1] end
    local k0 = 0
    chunks(names, 1000, function(...)
      local r = redis.call('HMGET', KEYS[1], ...)
      for k = 1, #r do
        if r[k] then note('done 1 ' .. (k0 + k)) end
      end
      k0 = k0 + #r
    end)
  end
end
i = i + npairs

-- 2. Key types.
local ntypes = tonumber(ARGV[i]); i = i + 1
for _ = 1, ntypes do
  local k = tonumber(ARGV[i])
  local have = redis.call('TYPE', KEYS[k])['ok']
  if have ~= 'none' and have ~= ARGV[i + 1] then note('type ' .. k .. ' ' .. have) end
  i = i + 2
end

-- 3. Values: replay each field's steps on its current value.
local denied
i, denied = check_values(i, note, mode ~= 'write')
if denied then return denied end

if #problems > 0 then
  return { 0, unpack(problems) }
end

-- 4. Permissions, before any write.
local function deny(cmd, key)
  return redis.error_reply('NOPERM this user may not run ' .. cmd .. ' on ' .. key)
end
if not redis.acl_check_cmd('HSET', KEYS[1], 'f', 'v') then
  return deny('HSET', KEYS[1])
end
local nops = tonumber(ARGV[i]); i = i + 1
local ops_at = i
local allowed = {}
for _ = 1, nops do
  local cmd, argc = ARGV[i], tonumber(ARGV[i + 2])
  if not allowed[cmd] then
    if not redis.acl_check_cmd(cmd, KEYS[tonumber(ARGV[i + 1])], unpack(ARGV, i + 3, i + 2 + argc)) then
      return deny(cmd, KEYS[tonumber(ARGV[i + 1])])
    end
    allowed[cmd] = true
  end
  i = i + 3 + argc
end

if mode ~= 'write' then
  return { 1 }
end

-- Phase 2: write the record and the effects. Nothing below can be refused.
local rec = {}
for k = 0, npairs - 1 do
  rec[2 * k + 1] = ARGV[pairs_at + k]
  rec[2 * k + 2] = now
end
chunks(rec, 1000, function(...) redis.call('HSET', KEYS[1], ...) end)

i = ops_at
for _ = 1, nops do
  local argc = tonumber(ARGV[i + 2])
  redis.call(ARGV[i], KEYS[tonumber(ARGV[i + 1])], unpack(ARGV, i + 3, i + 2 + argc))
  i = i + 3 + argc
end

return { 1 }
