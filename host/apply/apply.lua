-- Applies one batch atomically. See apply.go (encode) for the layout:
-- KEYS[1] is the dead-letter stream, KEYS[2] the source stream to
-- acknowledge (KEYS[1] again when there is none), other KEYS are the keys
-- written.
-- ARGV: now_us (the markers' value), dl_maxlen, group, #checks, (key_idx, type)*,
--   #writes, (order_key_idx, marker, #effects, (command, key_idx, argc, arg*)*)*,
--   #dead_letters, (order_key_idx or 0, marker, #fields, field*)*,
--   #deletes, dead-letter id*, #acks, source entry id*
-- Returns { statuses, failures }: per write 1 applied, 0 already done,
-- -1 order hash gone; failures are "write:effect:error" for effects Redis
-- refused at run time.
local now = ARGV[1]
local dl_maxlen = tonumber(ARGV[2])
local group = ARGV[3]
local i = 4

-- unpack() is bounded by Lua's C stack: send long id lists in chunks.
local function chunked(cmd, key, extra, from, n)
  local step = 1000
  for c = from, from + n - 1, step do
    local last = math.min(c + step - 1, from + n - 1)
    if extra then
      redis.call(cmd, key, extra, unpack(ARGV, c, last))
    else
      redis.call(cmd, key, unpack(ARGV, c, last))
    end
  end
end

-- Check key types before writing anything: a WRONGTYPE error half way
-- through would leave part of the batch written.
local nchecks = tonumber(ARGV[i]); i = i + 1
for _ = 1, nchecks do
  local key = KEYS[tonumber(ARGV[i])]
  local want = ARGV[i + 1]
  i = i + 2
  local have = redis.call('TYPE', key)['ok']
  if have ~= 'none' and have ~= want then
    return redis.error_reply('WRONGTYPE-CONFLICT ' .. have .. ' ' .. want .. ' ' .. key)
  end
end

local statuses = {}
local failures = {}
local nwrites = tonumber(ARGV[i]); i = i + 1
for w = 1, nwrites do
  local order_key = KEYS[tonumber(ARGV[i])]
  local marker = ARGV[i + 1]
  local neffects = tonumber(ARGV[i + 2])
  i = i + 3
  local status = 1
  if redis.call('EXISTS', order_key) == 0 then
    status = -1
  elseif redis.call('HSETNX', order_key, marker, now) == 0 then
    status = 0
  end
  statuses[w] = status
  for e = 1, neffects do
    local argc = tonumber(ARGV[i + 2])
    if status == 1 then
      local r = redis.pcall(ARGV[i], KEYS[tonumber(ARGV[i + 1])], unpack(ARGV, i + 3, i + 2 + argc))
      if type(r) == 'table' and r.err then
        failures[#failures + 1] = w .. ':' .. e .. ':' .. r.err
      end
    end
    i = i + 3 + argc
  end
end

local ndead = tonumber(ARGV[i]); i = i + 1
for _ = 1, ndead do
  local order_idx = tonumber(ARGV[i])
  local marker = ARGV[i + 1]
  local n = tonumber(ARGV[i + 2])
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

-- Dead letters this batch replayed are gone with the batch that settled them.
local ndel = tonumber(ARGV[i]); i = i + 1
chunked('XDEL', KEYS[1], nil, i, ndel)
i = i + ndel

-- Source stream entries are acknowledged in the same step as their effects:
-- a host dying before this leaves them pending, to be claimed again.
local nack = tonumber(ARGV[i]); i = i + 1
chunked('XACK', KEYS[2], group, i, nack)

return { statuses, failures }
