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
--   now_us, dl_maxlen, group, #ack_streams, key_idx*
--   applies_idx, ring, lean_runs, since, since_token, token
--                                            KEYS[applies_idx] numbers the applies;
--                                            the ring's sets are named after it (see 2.)
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
--   'own <have> <name>'     eventhost's own key <name> holds another type
--   'value <n> <why>'       checked field number n holds a value the writes
--                           cannot use (it is not a number, or would overflow)
-- A command the ACL user may not run is an error reply starting NOPERM.
-- The globals the loops read, as locals: each global read is a table lookup.
local KEYS, ARGV, redis, unpack, tonumber, type, string, math = KEYS, ARGV, redis, unpack, tonumber, type, string, math
-- Numbers in ARGV are read as `ARGV[n] + 0`: Lua 5.1's tonumber() parses
-- a string twice (lua_isnumber, then lua_tonumber), and a batch has
-- hundreds of them. The host writes these arguments, so they always are
-- numbers.
local now = ARGV[1]
local dl_maxlen = ARGV[2] + 0
local group = ARGV[3]
local ack_keys = {}
for s = 1, ARGV[4] + 0 do ack_keys[s] = KEYS[ARGV[4 + s] + 0] end
local i = 5 + #ack_keys
local problems = {}
local applies, ring, lean_runs = ARGV[i] + 0, ARGV[i + 1] + 0, ARGV[i + 2] + 0
local since, since_token, token = ARGV[i + 3] + 0, ARGV[i + 4], ARGV[i + 5]
i = i + 6

local function note(p) problems[#problems + 1] = p end

-- @checks

-- 1. Marker sets. An order's plugins are marked done with one field that
-- lists them all (keyspace.DoneListField), or a field each when the list
-- would not fit, or the order holds a list already (a list is written
-- once: a plugin done later gets a field of its own).
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
-- Every run that marks orders numbers itself in KEYS[applies] (fields seq
-- and token) and keeps the keys of the orders it marked, and '#' .. its
-- token, in ring set seq % ring. A batch knows the last run its load saw
-- (since, since_token; since is -1 when it does not): the load read every
-- order's markers after that run, and the dispatcher left out what was
-- done then. So only the orders a run after it marked need their markers
-- read here. Every order is read when that cannot be told: the ring no
-- longer holds every run since, or holds another history (a failover lost
-- run since, and the numbers went on without it), or an order hash is gone.
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
-- The ring's sets are named after KEYS[applies] rather than passed in
-- KEYS: 64 more keys would cost every run more than the check saves on a
-- small batch. (This script runs on one node only: see cluster.lua.)
local function slot(n) return KEYS[applies] .. ':' .. (n % ring) end

local seq = 0 -- the last run's number
local ours = true
local cur = redis.pcall('HGET', KEYS[applies], 'seq')
if type(cur) == 'table' and cur.err then
  -- The run cannot be numbered: fail closed, before any write.
  if not string.find(cur.err, '^WRONGTYPE') then
    return redis.error_reply('NOPERM cannot read ' .. KEYS[applies] .. ' to number the run: ' .. cur.err)
  end
  note('own ' .. redis.call('TYPE', KEYS[applies])['ok'] .. ' ' .. KEYS[applies])
  ours = false
else
  seq = tonumber(cur) or 0
end
-- A ring set of another type is treated as missing, below, and replaced
-- when its number comes round again (DEL, then SADD).
local function ask(key, ...)
  local r = redis.pcall('SMISMEMBER', key, ...)
  if type(r) == 'table' and r.err then return nil end
  return r
end
-- Reading less needs these (and HDEL, to take the markers back should an
-- order hash turn out not to be a hash): without them, read everything.
local lean = norders > 0 and redis.acl_check_cmd('SMISMEMBER', slot(0), 'm')
  and redis.acl_check_cmd('EXISTS', KEYS[first_order])
  and redis.acl_check_cmd('HDEL', KEYS[first_order], 'f')
-- marked[o]: a run after the load marked order o. nil: read every order.
-- A load that saw no count (since 0) has no token to tell this history
-- from one whose count was deleted after a run marked its orders, and
-- numbered anew from 1: it reads every order.
local marked = nil
-- Past lean_runs runs since, the ring's sets cost more to ask than the
-- markers (and the ring holds ring - 1 runs besides since's).
if ours and lean and since > 0 and since <= seq and seq - since <= math.min(lean_runs, ring - 1) then
  local r = ask(slot(since), '#' .. since_token)
  local same = r ~= nil and r[1] == 1
  -- Every run since keeps its set (it holds the run's token at least),
  -- and no other run in the window writes it: one that is missing was
  -- deleted, and the orders it named are unknown.
  if same and seq > since then
    local sets = {}
    for n = since + 1, seq do sets[#sets + 1] = slot(n) end
    same = redis.call('EXISTS', unpack(sets)) == #sets
  end
  local present = 0
  if same then
    each_chunk(first_order, norders, function(a, b)
      present = present + redis.call('EXISTS', unpack(KEYS, a, b))
    end)
  end
  if present == norders then
    marked = {}
    for n = since + 1, seq do
      each_chunk(first_order, norders, function(a, b)
        local r = marked and ask(slot(n), unpack(KEYS, a, b))
        if not r then
          marked = nil
          return
        end
        for k = 1, #r do
          if r[k] == 1 then marked[a - first_order + k] = true end
        end
      end)
      if not marked then break end
    end
  end
end

-- listed[o]: order o, read here, holds a list of done plugins already.
local listed = {}
local o = 0
for _ = 1, nruns do
  local count, s = ARGV[i] + 0, ARGV[i + 1] + 0
  local names, plugins = set_names[s], set_plugins[s]
  for _ = 1, count do
    o = o + 1
    if not marked or marked[o] then
      local r = redis.pcall('HMGET', KEYS[first_order + o - 1], 'ts', done_list, unpack(names))
      if r.err or not r[1] then
        note('gone ' .. o)
      else
        listed[o] = r[2] ~= false
        for k = 1, #names do
          if r[k + 2] or lists(r[2], plugins, k) then note('done ' .. o .. ' ' .. k) end
        end
      end
    end
  end
  i = i + 2
end

-- 3. Key types. Sets and sorted sets are checked in bulk: SINTERCARD and
-- ZINTERCARD check every key's type before they compute anything, and the
-- empty KEYS[2] makes them stop right after. Should that fail (a key of
-- another type), TYPE finds out which; so it does for an ACL user without
-- the command (asked first: a refused call would fill the ACL log).
local bulk = { set = 'SINTERCARD', zset = 'ZINTERCARD' }
local function bulk_ok(cmd, ranges)
  if not redis.acl_check_cmd(cmd, '1', KEYS[2]) then return false end
  local ks = { KEYS[2] }
  local function flush()
    local r = redis.pcall(cmd, #ks, unpack(ks))
    ks = { KEYS[2] }
    return not (type(r) == 'table' and r.err)
  end
  for _, r in ipairs(ranges) do
    for k = r[1], r[1] + r[2] - 1 do
      ks[#ks + 1] = KEYS[k]
      if #ks > 1000 and not flush() then return false end
    end
  end
  return #ks == 1 or flush()
end
local ngroups = ARGV[i] + 0; i = i + 1
for _ = 1, ngroups do
  local want, n = ARGV[i], ARGV[i + 1] + 0
  i = i + 2
  local ranges = {}
  for r = 1, n do
    ranges[r] = { ARGV[i] + 0, ARGV[i + 1] + 0 }
    i = i + 2
  end
  if not (bulk[want] and bulk_ok(bulk[want], ranges)) then
    for _, r in ipairs(ranges) do
      for k = r[1], r[1] + r[2] - 1 do
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

if #problems > 0 then
  return { 0, unpack(problems) }
end

local ringless = false
-- 5. Permissions: refuse the batch before writing, not half way through.
-- Redis checked the keys already (they are all in KEYS); this checks the
-- commands, eventhost's own writes first.
local function deny(cmd, key)
  return redis.error_reply('NOPERM this user may not run ' .. cmd .. ' on ' .. key)
end
if norders > 0 and not redis.acl_check_cmd('HSET', KEYS[first_order], 'f', 'v') then
  return deny('HSET', KEYS[first_order])
end
-- An ACL from before the list, without the commands that write one to an
-- order not read: a field each, as then.
if norders > 0 and not (redis.acl_check_cmd('HSETNX', KEYS[first_order], 'f', 'v')
    and redis.acl_check_cmd('HGET', KEYS[first_order], 'f')) then
  for s = 1, nsets do set_lists[s] = false end
end
if norders > 0 then
  if not redis.acl_check_cmd('HSET', KEYS[applies], 'f', 'v') then return deny('HSET', KEYS[applies]) end
  local into = slot(seq + 1)
  -- A user who may not fill the ring (an ACL from before it) still
  -- numbers the run, past the ring: no load before it is then within the
  -- window, and no load after it finds this run's token, so every batch
  -- reads every order's markers, as before the ring.
  ringless = not (redis.acl_check_cmd('DEL', into) and redis.acl_check_cmd('SADD', into, 'm'))
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

-- Phase 2: write. Nothing below can be refused, but for an order hash
-- whose markers were not read (see 2.): its markers go first, and should
-- one not be a hash, or be marked done already, the markers set before it
-- are taken back (they were all new) and the batch returns that order as
-- gone, or done, with nothing written.
-- as_list[o]: order key o was marked with a list (else a field each).
local as_list = {}
local function unmark(upto)
  local j, q = runs_at, first_order
  for _ = 1, nruns do
    local count, names = ARGV[j] + 0, set_names[ARGV[j + 1] + 0]
    for _ = 1, count do
      if q >= upto then return end
      if as_list[q] then
        redis.call('HDEL', KEYS[q], done_list)
      else
        redis.call('HDEL', KEYS[q], unpack(names))
      end
      q = q + 1
    end
    j = j + 2
  end
end
-- mark_unread goes on marking order key o, whose markers were not read,
-- after r, the reply to its HSETNX of set s's list (false for a set with
-- no list), did not: it returns the batch's reply when it must stop.
local function mark_unread(o, s, r)
  local n = o - first_order + 1
  if r then
    if type(r) == 'table' and r.err then
      unmark(o)
      return { 0, 'gone ' .. n }
    end
    -- The order holds a list already (done for other plugins before the
    -- load, or by a write no run numbered): if it names none of these
    -- plugins, they get a field each.
    local have, plugins = redis.call('HGET', KEYS[o], done_list), set_plugins[s]
    local out = { 0 }
    for k = 1, #plugins do
      if lists(have, plugins, k) then out[#out + 1] = 'done ' .. n .. ' ' .. k end
    end
    if #out > 1 then
      unmark(o)
      return out
    end
  end
  local pairs = set_pairs[s]
  local set = redis.pcall('HSET', KEYS[o], unpack(pairs))
  if type(set) == 'table' and set.err then
    unmark(o)
    return { 0, 'gone ' .. n }
  end
  -- Every marker was set already, by a write no run numbered (a host
  -- older than the count, a hand edit): the order is done, as reading
  -- its markers would have found (only their times are now this
  -- run's). Some set, some not, cannot be told apart any more.
  if set == 0 then
    unmark(o)
    local out = { 0 }
    for k = 1, #pairs / 2 do out[#out + 1] = 'done ' .. n .. ' ' .. k end
    return out
  end
end
i = runs_at
o = first_order
for _ = 1, nruns do
  local count, s = ARGV[i] + 0, ARGV[i + 1] + 0
  local list, pairs = set_lists[s], set_pairs[s]
  for _ = 1, count do
    local n = o - first_order + 1
    if marked and not marked[n] then
      -- The common case inline: one field, new.
      local r = list and redis.pcall('HSETNX', KEYS[o], done_list, list)
      if r == 1 then
        as_list[o] = true
      else
        local stop = mark_unread(o, s, r)
        if stop then return stop end
      end
    elseif list and not listed[n] then
      redis.call('HSET', KEYS[o], done_list, list)
      as_list[o] = true
    else
      redis.call('HSET', KEYS[o], unpack(pairs))
    end
    o = o + 1
  end
  i = i + 2
end

-- This run's number, and the orders it marked, for the runs after it.
if norders > 0 and ringless then
  redis.call('HSET', KEYS[applies], 'seq', seq + ring, 'token', token)
elseif norders > 0 then
  seq = seq + 1
  redis.call('HSET', KEYS[applies], 'seq', seq, 'token', token)
  local into = slot(seq)
  redis.call('DEL', into)
  redis.call('SADD', into, '#' .. token)
  each_chunk(first_order, norders, function(a, b)
    redis.call('SADD', into, unpack(KEYS, a, b))
  end)
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
