#!lua
-- Applies one batch atomically, or nothing. apply.go (plan.go) lays it out.
--
-- The shebang line makes Redis refuse the whole script before it runs when
-- it cannot write (OOM, MISCONF, READONLY, NOREPLICAS), and the first phase
-- below checks everything else Redis could refuse, so the second phase,
-- which writes, cannot fail half way: Redis scripts do not roll back.
--
-- KEYS[1] is the dead-letter stream, KEYS[2] a key that does not exist
-- (see the type checks), then come the source streams to acknowledge
-- entries on, the order hashes one after the other, and the keys effects
-- write.
-- ARGV:
--   now_us, now_ms, dl_maxlen, group, #ack_streams, key_idx*
--   #marker_sets, (list, #names, (name, needle)*)*
--                                            done markers, shared by orders: the
--                                            plugins' fields, what a list naming
--                                            each holds (keyspace.DoneListNeedle),
--                                            and the value of the one field that
--                                            names them all ('' when they need a
--                                            field each; keyspace.DoneList)
--   #orders, first_key_idx, #runs, (count, set_idx)*
--                                            the order hashes are KEYS[first_key_idx]
--                                            on; runs of orders share a marker set
--   #type_groups, (type, #ranges, (first_key_idx, #keys)*)*
--                                            every key written, by the type it needs
--   #checks, (key_idx, kind, #fields, (field, #steps, (step, value)*)*)*
--                                            values the writes will read: kind 'h'
--                                            is hash fields, 's' the string itself
--                                            (field ''), 'p' a HyperLogLog
--   #op_runs, (command, argc, #ops, first_key_idx, arg*)*
--                                            the coalesced effects, by runs of
--                                            one command and argument count on
--                                            consecutive keys: op j of a run
--                                            writes KEYS[first_key_idx + j - 1]
--   #dead_letters, (order_key_idx or 0, marker, #fields, field*)*
--   #deletes, dead-letter id*, (#acks, source entry id*) per ack stream
-- Returns {1} once everything is written, or {0, problem*} with nothing
-- written, where a problem is one of
--   'done <order> <name>'   the order's marker <name> (1-based) is set already
--   'gone <order>'          the order hash was deleted (or is not a hash)
--   'type <key> <have>'     the key holds another type
--   'value <n> <why>'       checked field number n holds a value the writes
--                           cannot use (it is not a number, or would overflow)
-- and only 'done' and 'gone' problems when there are any: the others may go
-- once those writes are left out.
-- A command the ACL user may not run is an error reply starting NOPERM.
-- The globals the loops read, as locals: each global read is a table lookup.
local KEYS, ARGV, redis, unpack, tonumber, type, string, math = KEYS, ARGV, redis, unpack, tonumber, type, string, math
-- Numbers in ARGV are read as `ARGV[n] + 0`: Lua 5.1's tonumber() parses
-- a string twice (lua_isnumber, then lua_tonumber), and a batch has
-- hundreds of them. The host writes these arguments, so they always are
-- numbers.
local now, now_ms = ARGV[1], ARGV[2]
local dl_maxlen = ARGV[3] + 0
local group = ARGV[4]
local ack_keys = {}
for s = 1, ARGV[5] + 0 do ack_keys[s] = KEYS[ARGV[5 + s] + 0] end
local i = 6 + #ack_keys
local problems = {}

local function note(p) problems[#problems + 1] = p end
-- refusal is the reply that refuses the batch for problems.
local function refusal()
  local out = { 0 }
  for k = 1, #problems do out[k + 1] = problems[k] end -- unpack() is bounded
  return out
end

-- @checks

-- 1. Marker sets. An order's plugins are marked done with one field that
-- lists them all (keyspace.DoneListField), or a field each when the list
-- would not fit, or the order holds a list already (a list is written
-- once: a plugin done later gets a field of its own). An order marked with
-- a field each gets a list naming no plugin (the time alone) if it holds
-- none: every marked order holds a list (see 2.).
local done_list = 'eventhost:done'
local nsets = ARGV[i] + 0; i = i + 1
local set_names, set_pairs, set_plugins, set_lists = {}, {}, {}, {}
for s = 1, nsets do
  local list, n = ARGV[i], ARGV[i + 1] + 0
  i = i + 2
  local names, pairs, plugins = {}, {}, {}
  for k = 1, n do
    names[k] = ARGV[i]
    plugins[k] = ARGV[i + 1] ~= '' and ARGV[i + 1] -- false: no list names it
    pairs[2 * k - 1] = ARGV[i]
    pairs[2 * k] = now
    i = i + 2
  end
  set_names[s], set_pairs[s], set_plugins[s] = names, pairs, plugins
  set_lists[s] = list ~= '' and list
end
-- lists(v, plugins, k): list v (from an order hash) names plugin k. The
-- time comes first, with no space before it: it never matches a needle.
local function lists(v, plugins, k)
  return v and plugins[k] and string.find(v .. ' ', plugins[k], 1, true) ~= nil
end

-- 2. Orders: the hash still exists and no marker is set yet.
--
-- The load read every order's markers and the dispatcher left out what was
-- done then, so what is left to find is a run since the load. Every run
-- that marks an order leaves a list in it (phase 2), so an HSETNX of the
-- list that writes proves that no run marked the order since: the lean
-- check reads no markers. It checks that every hash still exists (one
-- EXISTS), and each order's HSETNX finds the rest (phase 2). Orders whose
-- plugins get a field each are read here, and so is every order when one
-- hash is gone or the ACL user may not run what the lean check needs.
local norders = ARGV[i] + 0
local first_order = ARGV[i + 1] + 0
local nruns = ARGV[i + 2] + 0
i = i + 3
local runs_at = i

-- unpack() is bounded by Lua's C stack: long lists go in chunks.
local function each_chunk(from, n, fn)
  for c = from, from + n - 1, 1000 do
    fn(c, math.min(c + 999, from + n - 1))
  end
end
if norders > 0 and not redis.acl_check_cmd('HMGET', KEYS[first_order], 'f') then
  return redis.error_reply('NOPERM this user may not run HMGET on ' .. KEYS[first_order])
end
local lean = norders > 0 and redis.acl_check_cmd('EXISTS', KEYS[first_order])
  and redis.acl_check_cmd('HSETNX', KEYS[first_order], 'f', 'v')
  and redis.acl_check_cmd('HDEL', KEYS[first_order], 'f')
if lean then
  local present = 0
  each_chunk(first_order, norders, function(a, b)
    present = present + redis.call('EXISTS', unpack(KEYS, a, b))
  end)
  lean = present == norders
end

-- read(o, s) reads order key o's markers for set s, noting the order gone
-- or its plugins done, and returns whether it holds a list.
local function read(o, s)
  local n, names, plugins = o - first_order + 1, set_names[s], set_plugins[s]
  local r = redis.pcall('HMGET', KEYS[o], 'ts', done_list, unpack(names))
  if r.err or not r[1] then
    note('gone ' .. n)
    return false
  end
  for k = 1, #names do
    if r[k + 2] or lists(r[2], plugins, k) then note('done ' .. n .. ' ' .. k) end
  end
  return r[2] ~= false
end
-- listed[o - base]: order key o, read here, holds a list already (keyed
-- from 1, so that the table keeps them in its array part).
local base = first_order - 1
local listed = {}
-- read_runs reads the orders of every run whose marker set s passes
-- wanted(s).
local function read_runs(wanted)
  local j, o = runs_at, first_order
  for _ = 1, nruns do
    local count, s = ARGV[j] + 0, ARGV[j + 1] + 0
    if wanted(s) then
      for q = o, o + count - 1 do listed[q - base] = read(q, s) end
    end
    o, j = o + count, j + 2
  end
end
local function every() return true end
local function with_list(s) return set_lists[s] end
read_runs(function(s) return not (lean and set_lists[s]) end)
i = runs_at + 2 * nruns

-- 3. Key types. Sets and sorted sets are checked in bulk: SINTERCARD and
-- ZINTERCARD check every key's type before they compute anything, and the
-- empty KEYS[2] makes them stop right after. Should that fail (a key of
-- another type), TYPE finds out which; so it does for an ACL user without
-- the command (asked first: a refused call would fill the ACL log).
local bulk = { set = 'SINTERCARD', zset = 'ZINTERCARD' }
-- ranges holds (first key index, count) pairs, flat: runs of consecutive
-- KEYS, passed with unpack() rather than copied into a table of their own.
local function bulk_ok(cmd, ranges)
  if not redis.acl_check_cmd(cmd, '1', KEYS[2]) then return false end
  for r = 1, #ranges, 2 do
    local first, last = ranges[r], ranges[r] + ranges[r + 1] - 1
    for c = first, last, 1000 do
      local to = math.min(c + 999, last)
      local res = redis.pcall(cmd, to - c + 2, KEYS[2], unpack(KEYS, c, to))
      if type(res) == 'table' and res.err then return false end
    end
  end
  return true
end
local ngroups = ARGV[i] + 0; i = i + 1
for _ = 1, ngroups do
  local want, n = ARGV[i], ARGV[i + 1] + 0
  i = i + 2
  local ranges = {}
  for r = 1, 2 * n do ranges[r] = ARGV[i + r - 1] + 0 end
  i = i + 2 * n
  if not (bulk[want] and bulk_ok(bulk[want], ranges)) then
    for r = 1, #ranges, 2 do
      for k = ranges[r], ranges[r] + ranges[r + 1] - 1 do
        local have = redis.call('TYPE', KEYS[k])['ok']
        if have ~= 'none' and have ~= want then note('type ' .. k .. ' ' .. have) end
      end
    end
  end
end

-- 4. Values: replay each field's steps on its current value.
local denied
i, denied = check_values(i, note, false)
if denied then return denied end

-- A batch refused for a key's type or a value is refused before the lean
-- check's HSETNXs find what a run since the load marked: read those orders
-- now, so that a pair done since (whose writes the checks replayed) comes
-- back done, and an order no longer a hash gone, as reading every order
-- in 2. would have told, rather than refused and dead-lettered.
if #problems > 0 and lean then read_runs(with_list) end
-- The type and value checks replayed the steps of every write, those of
-- pairs found done or orders found gone included: with those left out, a
-- value may be fine after all. So a batch with pairs done or orders gone
-- reports those alone, and the host checks the rest again without them.
if #problems > 0 then
  local settled = {}
  for k = 1, #problems do
    local kind = string.sub(problems[k], 1, 5)
    if kind == 'done ' or kind == 'gone ' then settled[#settled + 1] = problems[k] end
  end
  if #settled > 0 then problems = settled end
  return refusal()
end

-- 5. Permissions: refuse the batch before writing, not half way through.
-- Redis checked the keys already (they are all in KEYS); this checks the
-- commands, eventhost's own writes first.
local function deny(cmd, key)
  return redis.error_reply('NOPERM this user may not run ' .. cmd .. ' on ' .. key)
end
if norders > 0 and not redis.acl_check_cmd('HSET', KEYS[first_order], 'f', 'v') then
  return deny('HSET', KEYS[first_order])
end
if not redis.acl_check_cmd('XADD', KEYS[1], '*', 'f', 'v') or not redis.acl_check_cmd('XDEL', KEYS[1], '0-1') then
  return deny('XADD and XDEL', KEYS[1])
end
for _, key in ipairs(ack_keys) do
  if not redis.acl_check_cmd('XACK', key, group, '0-1') then
    return deny('XACK', key)
  end
end
-- Once per command: Redis checked every key already, as part of KEYS.
local nops = ARGV[i] + 0; i = i + 1
local ops_at = i
local allowed = {}
for _ = 1, nops do
  local cmd, argc, n, k = ARGV[i], ARGV[i + 1] + 0, ARGV[i + 2] + 0, ARGV[i + 3] + 0
  i = i + 4
  if not allowed[cmd] then
    if not redis.acl_check_cmd(cmd, KEYS[k], unpack(ARGV, i, i + argc - 1)) then
      return deny(cmd, KEYS[k])
    end
    allowed[cmd] = true
  end
  i = i + n * argc
end

-- Phase 2: write. Nothing below can be refused, but for an order the lean
-- check did not read: should its HSETNX find a list naming one of the
-- plugins (a run since the load), or the key not a hash any more, the
-- markers set before it are taken back (they were all new) and every order
-- is read, so that the host leaves out at once all that is done or gone.
-- as_list[o - base]: order key o was marked with a list (1), with a field each
-- and a list of none (2), or with a field each alone (nil).
local as_list = {}
local function unmark(upto)
  local j, q = runs_at, first_order
  for _ = 1, nruns do
    local count, names = ARGV[j] + 0, set_names[ARGV[j + 1] + 0]
    for _ = 1, count do
      if q >= upto then return end
      if as_list[q - base] == 1 then
        redis.call('HDEL', KEYS[q], done_list)
      elseif as_list[q - base] == 2 then
        redis.call('HDEL', KEYS[q], done_list, unpack(names))
      else
        redis.call('HDEL', KEYS[q], unpack(names))
      end
      q = q + 1
    end
    j = j + 2
  end
end
-- taken(o, s, r): order key o's HSETNX of set s's list replied r, not 1.
-- It returns the batch's reply when the batch must stop, nothing when the
-- order holds a list naming none of the plugins (done for others before
-- the load: a retry, a replay, a backfill), which then get a field each.
local function taken(o, s, r)
  if not (type(r) == 'table' and r.err) then
    read(o, s)
    if #problems == 0 then return nil end
    problems = {}
  end
  unmark(o)
  read_runs(every)
  return refusal()
end
local o = first_order
i = runs_at
for _ = 1, nruns do
  local count, s = ARGV[i] + 0, ARGV[i + 1] + 0
  local list, pairs = set_lists[s], set_pairs[s]
  if lean and list then
    for q = o, o + count - 1 do
      -- The common case inline: one field, new.
      local r = redis.pcall('HSETNX', KEYS[q], done_list, list)
      if r == 1 then
        as_list[q - base] = 1
      else
        local stop = taken(q, s, r)
        if stop then return stop end
        redis.call('HSET', KEYS[q], unpack(pairs))
      end
    end
  else
    for q = o, o + count - 1 do
      if listed[q - base] then
        redis.call('HSET', KEYS[q], unpack(pairs))
      elseif list then
        redis.call('HSET', KEYS[q], done_list, list)
        as_list[q - base] = 1
      else
        redis.call('HSET', KEYS[q], done_list, now_ms, unpack(pairs))
        as_list[q - base] = 2
      end
    end
  end
  o, i = o + count, i + 2
end

i = ops_at
for _ = 1, nops do
  local cmd, argc, n, k = ARGV[i], ARGV[i + 1] + 0, ARGV[i + 2] + 0, ARGV[i + 3] + 0
  i = i + 4
  if argc == 1 then -- most runs (a member each): no unpack() call per command
    for o = 0, n - 1 do redis.call(cmd, KEYS[k + o], ARGV[i + o]) end
    i = i + n
  else
    for o = 0, n - 1 do
      redis.call(cmd, KEYS[k + o], unpack(ARGV, i, i + argc - 1))
      i = i + argc
    end
  end
end

local ndead = ARGV[i] + 0; i = i + 1
for _ = 1, ndead do
  local order_idx = ARGV[i] + 0
  local marker = ARGV[i + 1]
  local n = ARGV[i + 2] + 0
  i = i + 3
  -- Mark the order hash (never create one) so catch-up passes it over.
  if order_idx > 0 and redis.call('TYPE', KEYS[order_idx])['ok'] == 'hash' then
    redis.call('HSET', KEYS[order_idx], marker, now)
  end
  if dl_maxlen > 0 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', dl_maxlen, '*', unpack(ARGV, i, i + n - 1))
  else
    redis.call('XADD', KEYS[1], '*', unpack(ARGV, i, i + n - 1))
  end
  i = i + n
end

-- Long id lists go in chunks (each_chunk).
local function chunked(cmd, key, extra, from, n)
  each_chunk(from, n, function(a, b)
    if extra then
      redis.call(cmd, key, extra, unpack(ARGV, a, b))
    else
      redis.call(cmd, key, unpack(ARGV, a, b))
    end
  end)
end

-- Dead letters this batch replayed are gone with the batch that settled them.
local ndel = ARGV[i] + 0; i = i + 1
chunked('XDEL', KEYS[1], nil, i, ndel)
i = i + ndel

-- Source stream entries are acknowledged in the same step as their effects:
-- a host dying before this leaves them pending, to be claimed again.
for _, key in ipairs(ack_keys) do
  local nack = ARGV[i] + 0; i = i + 1
  chunked('XACK', key, group, i, nack)
  i = i + nack
end

return { 1 }
