-- set_capacity.lua: change a pool's capacity. Shrinking never revokes a lease.
--
-- KEYS[1]  meta hash    <prefix>:{P}:meta
-- KEYS[2]  leases zset  <prefix>:{P}:leases
-- KEYS[3]  events       <prefix>:{P}:events (pub/sub channel; gets "free <n> <origin>")
-- ARGV[1]  the new capacity (an integer >= 1)
-- ARGV[2]  origin: the caller's coordinator id (it skips its own event), or ""
--
-- Returns {old capacity (-1 if the pool had none), live leases}.
-- Cost: O(log N).

if redis.replicate_commands then pcall(redis.replicate_commands) end

local function s(n) return string.format('%.0f', n) end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local old = tonumber(redis.call('HGET', KEYS[1], 'capacity')) or -1
local cap = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'capacity', ARGV[1])
local live = redis.call('ZCOUNT', KEYS[2], '(' .. s(now_ms), '+inf')
if cap > old and cap - live > 0 then
  redis.call('PUBLISH', KEYS[3], 'free ' .. s(cap - live))
end
return {old, live}
