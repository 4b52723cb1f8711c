-- reclaim.lua: remove a bounded batch of expired leases and report the pool.
--
-- KEYS[1]  leases zset  <prefix>:{P}:leases
-- KEYS[2]  meta hash    <prefix>:{P}:meta
-- KEYS[3]  events       <prefix>:{P}:events (pub/sub channel; gets "free <n>")
-- ARGV[1]  batch: remove at most this many expired ids
--
-- Expired lease hashes are not deleted here: each one carries a TTL of its own.
-- Returns {reclaimed, now_ms, live, capacity (-1 if unset), earliest_hard_ms (-1 if none)}.
-- Cost: O(log N + batch).

if redis.replicate_commands then pcall(redis.replicate_commands) end

local function s(n) return string.format('%.0f', n) end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
end
local live = redis.call('ZCOUNT', KEYS[1], '(' .. s(now_ms), '+inf')
local cap = tonumber(redis.call('HGET', KEYS[2], 'capacity')) or -1
if #expired > 0 and cap - live > 0 then
  redis.call('PUBLISH', KEYS[3], 'free ' .. s(cap - live))
end
local first = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. s(now_ms), '+inf',
  'WITHSCORES', 'LIMIT', 0, 1)
local earliest = -1
if #first > 0 then earliest = tonumber(first[2]) end
return {#expired, now_ms, live, cap, earliest}
