-- init.lua: check a pool's keys and create its capacity if it has none.
--
-- KEYS[1]  meta hash    <prefix>:{P}:meta
-- KEYS[2]  leases zset  <prefix>:{P}:leases
-- KEYS[3]  queue zset   <prefix>:{P}:queue
-- KEYS[4]  tickets hash <prefix>:{P}:tickets
-- KEYS[5]  waiters zset <prefix>:{P}:waiters
-- ARGV[1]  capacity for a new pool (a stored capacity wins)
--
-- Returns {stored capacity, 1 if this call set it else 0, now_ms}. Fails with a
-- "LEASEPOOL_STATE <key> ..." error when a key holds the wrong type or a bad value.
-- Cost: O(1).

local expected = {'hash', 'zset', 'zset', 'hash', 'zset'}
for i = 1, 5 do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= expected[i] and kind ~= 'none' then
    return redis.error_reply('LEASEPOOL_STATE ' .. KEYS[i] .. ' is a ' .. kind
      .. ', expected a ' .. expected[i])
  end
end
local created = redis.call('HSETNX', KEYS[1], 'capacity', ARGV[1])
local raw = redis.call('HGET', KEYS[1], 'capacity')
local cap = tonumber(raw)
if not cap or cap < 1 or cap ~= math.floor(cap) then
  return redis.error_reply('LEASEPOOL_STATE ' .. KEYS[1] .. ' field capacity is not a positive integer')
end
local t = redis.call('TIME')
return {cap, created, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
