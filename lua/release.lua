-- release.lua: free the slot a lease holds. Idempotent.
--
-- KEYS[1]  leases zset  <prefix>:{P}:leases
-- KEYS[2]  lease hash   <prefix>:{P}:lease:<ARGV[1]>
-- KEYS[3]  meta hash    <prefix>:{P}:meta
-- KEYS[4]  events       <prefix>:{P}:events (pub/sub channel; gets "free <n> <origin>")
-- KEYS[5]  waiting zset <prefix>:{P}:waiting (origin -> ms until which it waits)
-- ARGV[1]  lease id
-- ARGV[2]  origin: the releasing coordinator's id, so it can skip its own event
-- ARGV[3]  record margin ms when the acquire of this id was cancelled, else 0: an
--          unknown id then gets a tombstone (field "cancelled") that makes a late
--          acquire of the same id fail, whatever order the two calls arrive in
--
-- The event is published only while some process notes itself as waiting (see
-- acquire.lua): without waiters a release costs no pub/sub traffic.
-- Returns 1 (released: the lease was live), 2 (expired: it had passed its hard
-- expiry) or 0 (unknown: never granted, already released, revoked, or lost).
-- Cost: O(log N).

if redis.replicate_commands then pcall(redis.replicate_commands) end

local function s(n) return string.format('%.0f', n) end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local known = redis.call('DEL', KEYS[2])
if not score then
  if known == 1 then return 2 end
  if tonumber(ARGV[3]) > 0 then
    redis.call('HSET', KEYS[2], 'cancelled', '1')
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
  end
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(score) <= now_ms then
  return 2
end

if redis.call('ZCOUNT', KEYS[5], '(' .. s(now_ms), '+inf') == 0 then
  return 1
end
local cap = tonumber(redis.call('HGET', KEYS[3], 'capacity'))
if cap then
  local free = cap - redis.call('ZCOUNT', KEYS[1], '(' .. s(now_ms), '+inf')
  if free > 0 then
    redis.call('PUBLISH', KEYS[4], 'free ' .. s(free) .. ' ' .. ARGV[2])
  end
end
return 1
