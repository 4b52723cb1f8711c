-- init.lua: check a pool's keys and create its capacity if it has none.
--
-- KEYS[1]  meta hash    <prefix>:{P}:meta
-- KEYS[2]  leases zset  <prefix>:{P}:leases
-- ARGV[1]  capacity for a new pool (a stored capacity wins)
--
-- Returns {stored capacity, 1 if this call set it else 0}. Fails with a
-- "LEASEPOOL_STATE <key> ..." error when a key holds the wrong type or a bad value.
-- Cost: O(1).

local function kind(key) return redis.call('TYPE', key).ok end

if kind(KEYS[1]) ~= 'hash' and kind(KEYS[1]) ~= 'none' then
  return redis.error_reply('LEASEPOOL_STATE ' .. KEYS[1] .. ' is a ' .. kind(KEYS[1])
    .. ', expected a hash')
end
if kind(KEYS[2]) ~= 'zset' and kind(KEYS[2]) ~= 'none' then
  return redis.error_reply('LEASEPOOL_STATE ' .. KEYS[2] .. ' is a ' .. kind(KEYS[2])
    .. ', expected a zset')
end
local created = redis.call('HSETNX', KEYS[1], 'capacity', ARGV[1])
local raw = redis.call('HGET', KEYS[1], 'capacity')
local cap = tonumber(raw)
if not cap or cap < 1 or cap ~= math.floor(cap) then
  return redis.error_reply('LEASEPOOL_STATE ' .. KEYS[1] .. ' field capacity is not a positive integer')
end
return {cap, created}
