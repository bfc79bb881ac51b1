-- Applies one batch atomically. See apply.go (encode) for the layout:
-- KEYS[1] is the dead-letter stream, other KEYS are the keys written.
-- ARGV: now_us (the done markers' value), dl_maxlen, #checks, (key_idx, type)*, #writes,
--   (order_key_idx, marker, #effects, (command, key_idx, argc, arg*)*)*,
--   #dead_letters, (#fields, field*)*
-- Returns { statuses, failures }: per write 1 applied, 0 already done,
-- -1 order hash gone; failures are "write:effect:error" for effects Redis
-- refused at run time.
local now = ARGV[1]
local dl_maxlen = tonumber(ARGV[2])
local i = 3

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
  local n = tonumber(ARGV[i])
  if dl_maxlen > 0 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', dl_maxlen, '*', unpack(ARGV, i + 1, i + n))
  else
    redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, i + n))
  end
  i = i + 1 + n
end

return { statuses, failures }
