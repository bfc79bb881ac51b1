-- One step of a catch-up scan, run inside Redis so that no key costs a
-- round trip: SCAN one page of order keys, then read each key's markers.
-- ARGV: cursor, match, count, length of the key prefix, #wants, then per
--   want: done, dead, history
--   field, history token ("" counts any history marker as history; "*"
--   counts none, for a backfill), what a list naming the plugin holds
--   (keyspace.DoneListNeedle; "" when none can). A plugin is also done when
--   the order's list of done plugins (keyspace.DoneListField) names it.
-- Returns { next cursor, keys seen, { id, flags }* }: flags
-- has one character per want, "1" when that plugin has not finished the
-- order. Keys that are not hashes, that hold no order field, or that are
-- bad orders (eventhost:dead) are passed over.
-- It writes nothing, so it also runs while Redis refuses writes, and it
-- calls nothing but SCAN, HGET and HMGET, which the host's ACL allows.
local skip = tonumber(ARGV[4]) + 1 -- where the id starts in a key
local nw = tonumber(ARGV[5])
local function arg(j, n) return ARGV[6 + 5 * (j - 1) + n] end
local done, named = {}, {}
for j = 1, nw do
  done[j] = arg(j, 0)
  named[j] = arg(j, 4) ~= '' and arg(j, 4) -- false: no list names it
end
local page = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local keys = page[2]
local out = {}
local call = redis.pcall
-- refused says why Redis refused to read key k (a reply r that is an
-- error other than WRONGTYPE: an ACL without the command), or nil. A key of
-- another type is passed over; a refusal fails the scan, rather than pass
-- over every order.
local function refused(r, k)
  if type(r) == 'table' and r.err and not string.find(r.err, '^WRONGTYPE') then
    return redis.error_reply('NOPERM cannot read ' .. k .. ' to find unfinished orders: ' .. r.err)
  end
end
for i = 1, #keys do
  local k = keys[i]
  -- The common case, every plugin done by one list, costs one HGET; a
  -- plugin the list does not name, one HMGET of the done fields more.
  local list = call('HGET', k, 'eventhost:done')
  if refused(list, k) then return refused(list, k) end
  if type(list) ~= 'table' then
    local missing, v = nil, nil
    -- The list starts with the time, with no space before it: never a name.
    list = list and (list .. ' ')
    for j = 1, nw do
      if not (list and named[j] and string.find(list, named[j], 1, true)) then
        v = v or call('HMGET', k, unpack(done))
        if refused(v, k) then return refused(v, k) end
        if not v[j] then
          missing = missing or {}
          missing[#missing + 1] = j
        end
      end
    end
    if missing then
      local fields = { 'eventhost:dead', 'ts', 'qty', 'cost', 'event', 'who' }
      for _, j in ipairs(missing) do
        fields[#fields + 1] = arg(j, 1)
        fields[#fields + 1] = arg(j, 2)
      end
      local w = call('HMGET', k, unpack(fields))
      if refused(w, k) then return refused(w, k) end
      local order = w[2] or w[3] or w[4] or w[5] or w[6]
      if order and not w[1] then
        local flags, any = {}, false
        for j = 1, nw do flags[j] = '0' end
        for m, j in ipairs(missing) do
          local dead, hist = w[5 + 2 * m], w[6 + 2 * m]
          local token = arg(j, 3)
          local history = hist and (token == '' or hist == token)
          if not dead and not history then
            flags[j] = '1'
            any = true
          end
        end
        if any then
          out[#out + 1] = string.sub(k, skip)
          out[#out + 1] = table.concat(flags)
        end
      end
    end
  end
end
return { page[1], #keys, out }
