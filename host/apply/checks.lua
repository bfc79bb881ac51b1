-- The value checks apply.lua and cluster.lua share: apply.go puts this text
-- where a script says "-- @checks".
-- Redis' own integer grammar (string2ll): no sign but '-', no leading
-- zeros, no '-0', at most 20 characters.
local function redis_int(v)
  if v == '0' then return 0 end
  if #v > 20 or not (string.find(v, '^-?[1-9]%d*$')) then return nil end
  return tonumber(v)
end

-- Lua numbers are doubles: this bound keeps a sum checked here from
-- overflowing int64 in Redis, with a margin for the rounding.
local int_limit = 9.2e18

local function finite(x) return x == x and x ~= math.huge and x ~= -math.huge end

-- A number as Redis reads one for HINCRBYFLOAT (string2ld): under 5,120
-- bytes, no surrounding space, no hex, finite, and not a non-zero value
-- that underflows to zero. Lua reads doubles, Redis long doubles: where
-- they disagree this refuses what Redis might take, never the reverse.
local function redis_float(v)
  if #v >= 5120 or string.find(v, '^%s') or string.find(v, '%s$') or string.find(v, '^[+-]?0[xX]') then return nil end
  local n = tonumber(v)
  if not n or not finite(n) then return nil end
  if n == 0 and string.find(string.match(v, '^[^eE]*'), '[1-9]') then return nil end
  return n
end

-- A value check's read: an error other than a type problem (the type
-- checks note those) is a read the ACL user may not make, and fails the
-- batch closed, before any write.
local function check_read(cur, key)
  if type(cur) == 'table' and cur.err and not string.find(cur.err, '^WRONGTYPE') then
    return redis.error_reply('NOPERM cannot read ' .. key .. ' to check the batch\'s writes: ' .. cur.err)
  end
end

-- check_values reads the check section from ARGV[i] on, '#checks, (key_idx,
-- kind, #fields, (field, #steps, (step, value)*)*)*', and replays each
-- field's steps on its current value, calling note for each value the
-- writes cannot use: kind 'h' is hash fields, 's' the string itself (field
-- ''), 'p' a HyperLogLog. read_only: a script that may not write (PFCOUNT
-- counts as one) checks a HyperLogLog by its header alone. It returns the
-- index after the section, and an error reply when the ACL user may not
-- make a check's read.
local function check_values(i, note, read_only)
  -- Counts and indexes are read with `+ 0`, steps' values by the sum itself:
  -- tonumber() would parse each string twice (see apply.lua).
  local nchecks = ARGV[i] + 0; i = i + 1
  local fi = 0 -- fields are numbered across checks, for the problems
  for _ = 1, nchecks do
    local k = ARGV[i] + 0
    local kind = ARGV[i + 1]
    local nfields = ARGV[i + 2] + 0
    i = i + 3
    for _ = 1, nfields do
      local field = ARGV[i]
      local nsteps = ARGV[i + 1] + 0
      i = i + 2
      fi = fi + 1
      local cur
      if kind == 'h' then
        cur = redis.pcall('HGET', KEYS[k], field)
      elseif kind == 'p' and read_only then
        -- Redis counts PFCOUNT as a write: a read-only check makes do
        -- with the header.
        cur = redis.pcall('GETRANGE', KEYS[k], 0, 3)
        if type(cur) == 'string' and cur ~= '' and cur ~= 'HYLL' then
          note('value ' .. fi .. ' is not a HyperLogLog')
        end
        local denied = check_read(cur, KEYS[k])
        if denied then return i, denied end
        cur = false
      elseif kind == 'p' then
        -- PFCOUNT reads the whole structure: a string that only starts
        -- like a HyperLogLog fails it as it would fail PFADD.
        cur = redis.pcall('PFCOUNT', KEYS[k])
        if type(cur) == 'table' and cur.err and (string.find(cur.err, '^INVALIDOBJ') or string.find(cur.err, '^WRONGTYPE')) then
          note('value ' .. fi .. ' is not a HyperLogLog')
          cur = false
        end
        local denied = check_read(cur, KEYS[k])
        if denied then return i, denied end
        cur = false
      else
        cur = redis.pcall('GET', KEYS[k])
      end
      local denied = check_read(cur, KEYS[k])
      if denied then return i, denied end
      if type(cur) == 'table' then cur = false end -- a type problem, noted above
      local num, why = nil, nil
      if cur then num = cur end
      for _ = 1, nsteps do
        local step, v = ARGV[i], ARGV[i + 1]
        i = i + 2
        if not why then
          if step == 'set' then
            num = v
          elseif step == 'int' then
            local n = 0
            if num then
              n = redis_int(num)
              if not n then why = 'holds ' .. string.format('%q', string.sub(num, 1, 40)) .. ', not an integer' end
            end
            if not why then
              n = n + v
              if n >= int_limit or n <= -int_limit then why = 'would overflow a 64-bit integer' end
              num = string.format('%.0f', n)
            end
          elseif step == 'float' then
            local n = 0
            if num then
              n = redis_float(num)
              if not n then
                why = 'holds ' .. string.format('%q', string.sub(num, 1, 40)) .. ', not a number Redis can read'
              end
            end
            if not why then
              n = n + v
              if not finite(n) then why = 'would become infinite' end
              -- Redis stores the sum as text; an integral one reads back as an integer.
              if n == math.floor(n) and n < int_limit and n > -int_limit then
                num = string.format('%.0f', n)
              else
                num = tostring(n)
              end
            end
          end
        end
      end
      if why then note('value ' .. fi .. ' ' .. why) end
    end
  end
  return i, nil
end
