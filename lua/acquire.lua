-- acquire.lua: grant one slot of a pool when a live slot is free.
--
-- KEYS[1]  meta hash    <prefix>:{P}:meta    (capacity, fence)
-- KEYS[2]  leases zset  <prefix>:{P}:leases  (lease id -> hard expiry, ms server time)
-- KEYS[3]  lease hash   <prefix>:{P}:lease:<ARGV[1]>
-- KEYS[4]  waiting zset <prefix>:{P}:waiting  (origin -> ms until which it waits)
-- ARGV[1]  lease id
-- ARGV[2]  owner
-- ARGV[3]  lease ms  (soft expiry = now + lease ms)
-- ARGV[4]  grace ms  (hard expiry = soft expiry + grace ms)
-- ARGV[5]  wait ms: when > 0 and the pool is full, note the origin as waiting until
--          now + wait ms, so that releases announce freed slots (see release.lua)
-- ARGV[6]  "capacity|batch|margin|origin|pid|host", constants of the asking process:
--          capacity  initialises a new pool (a stored capacity wins)
--          batch     remove at most this many expired ids from the zset
--          margin    ms the lease hash outlives the hard expiry
--          origin    the asking coordinator's id (for the waiting set)
--          pid, host recorded in the lease hash
--
-- Returns {1, token, now_ms, soft_ms, hard_ms} when granted, or when this lease id
-- already holds a live slot (a retried call gets its own grant back);
-- otherwise {0, now_ms, earliest_hard_ms (-1 if none), live, capacity};
-- {-1, now_ms} when the acquire of this id was cancelled (a tombstone, see release.lua).
-- Cost: O(log N + batch). Used capacity is counted with ZCOUNT over live scores.

if redis.replicate_commands then pcall(redis.replicate_commands) end

local function s(n) return string.format('%.0f', n) end

local cap0, batch, margin, origin, pid, host =
  string.match(ARGV[6], '^(%d+)|(%d+)|(%d+)|([^|]*)|(%d+)|(.*)$')
if not host then
  return redis.error_reply('ERR acquire.lua: malformed ARGV[6]')
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])

local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms, 'LIMIT', 0, tonumber(batch))
if #expired > 0 then
  redis.call('ZREM', KEYS[2], unpack(expired))
end

local held = redis.call('ZSCORE', KEYS[2], ARGV[1])
if held and tonumber(held) > now_ms then
  local rec = redis.call('HMGET', KEYS[3], 'token', 'soft_ms', 'hard_ms')
  if rec[1] then
    return {1, tonumber(rec[1]), now_ms, tonumber(rec[2]), tonumber(rec[3])}
  end
end

if redis.call('HEXISTS', KEYS[3], 'cancelled') == 1 then
  return {-1, now_ms}
end

local meta = redis.call('HMGET', KEYS[1], 'capacity', 'fence')
local cap
if meta[1] then
  cap = tonumber(meta[1])
  if not cap then
    return redis.error_reply('LEASEPOOL_STATE ' .. KEYS[1] .. ' field capacity is not a number')
  end
else
  cap = tonumber(cap0)
  redis.call('HSET', KEYS[1], 'capacity', cap0)
end

local live = redis.call('ZCOUNT', KEYS[2], '(' .. s(now_ms), '+inf')
if live >= cap then
  local wait_ms = tonumber(ARGV[5])
  if wait_ms > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now_ms)
    redis.call('ZADD', KEYS[4], s(now_ms + wait_ms), origin)
    local last = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', KEYS[4], last[2])
  end
  local first = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. s(now_ms), '+inf',
    'WITHSCORES', 'LIMIT', 0, 1)
  local earliest = -1
  if #first > 0 then earliest = tonumber(first[2]) end
  return {0, now_ms, earliest, live, cap}
end

local token = math.max((tonumber(meta[2]) or 0) + 1, now_us)
redis.call('HSET', KEYS[1], 'fence', s(token))

local soft = now_ms + tonumber(ARGV[3])
local hard = soft + tonumber(ARGV[4])
redis.call('ZADD', KEYS[2], s(hard), ARGV[1])
redis.call('HSET', KEYS[3],
  'owner', ARGV[2], 'host', host, 'pid', pid, 'token', s(token),
  'acquired_ms', s(now_ms), 'soft_ms', s(soft), 'hard_ms', s(hard), 'grace_ms', ARGV[4])
redis.call('PEXPIREAT', KEYS[3], s(hard + tonumber(margin)))
return {1, token, now_ms, soft, hard}
