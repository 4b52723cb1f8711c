-- init.lua: check a pool's keys and create its capacity if it has none.
--
-- KEYS[1]  meta hash    <prefix>:{P}:meta
-- KEYS[2]  leases zset  <prefix>:{P}:leases
-- KEYS[3]  queue zset   <prefix>:{P}:queue
-- KEYS[4]  tickets hash <prefix>:{P}:tickets
-- KEYS[5]  waiters zset <prefix>:{P}:waiters
-- ARGV[1]  the caller's constants (see _shared.lua, which init.lua does without); only
--          the first field is read: cap0, the capacity for a new pool (a stored
--          capacity wins), 0 (paused) to 1000000
--
-- Returns one string: "<now_ms> <stored capacity> <created>", created 1 if this call
-- set the capacity, else 0. Fails with a
-- "LEASEPOOL_STATE <key> ..." error when a key holds the wrong type, or meta's capacity
-- (an integer from 0 to 1000000), fence or qseq (integers below 2^53) is damaged.
-- Cost: O(1).

local expected = {'hash', 'zset', 'zset', 'hash', 'zset'}
for i = 1, 5 do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= expected[i] and kind ~= 'none' then
    return redis.error_reply('LEASEPOOL_STATE ' .. KEYS[i] .. ' is a ' .. kind
      .. ', expected a ' .. expected[i])
  end
end
local cap0 = string.match(ARGV[1], '^(%d+)|')
if not cap0 then return redis.error_reply('ERR init.lua: malformed constants') end
local created = redis.call('HSETNX', KEYS[1], 'capacity', cap0)
local meta = redis.call('HMGET', KEYS[1], 'capacity', 'fence', 'qseq')
local limits = {{'capacity', 1000000}, {'fence', 9007199254740990}, {'qseq', 9007199254740990}}
for i = 1, 3 do
  local raw = meta[i]
  local n = raw and string.match(raw, '^%d+$') and tonumber(raw)
  if (raw or i == 1) and (not n or n > limits[i][2]) then
    return redis.error_reply('LEASEPOOL_STATE ' .. KEYS[1] .. ' field ' .. limits[i][1] .. ' is '
      .. string.sub(tostring(raw), 1, 40) .. ', expected an integer from 0 to '
      .. string.format('%.0f', limits[i][2]))
  end
end
local t = redis.call('TIME')
return (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. ' ' .. meta[1] .. ' '
  .. created
