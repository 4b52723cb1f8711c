-- revoke.lua: remove a lease by id (an operator action) and tell its holder.
--
-- KEYS[1]  leases zset  <prefix>:{P}:leases
-- KEYS[2]  lease hash   <prefix>:{P}:lease:<ARGV[1]>
-- KEYS[3]  events       <prefix>:{P}:events (pub/sub channel; gets "revoke <id>")
-- ARGV[1]  lease id
--
-- Publishes "revoke <id>" when the lease was known (its holder then treats it
-- as lost, and waiters elsewhere retry).
-- Returns 1 if the lease was live, 0 otherwise.
-- Cost: O(log N).

if redis.replicate_commands then pcall(redis.replicate_commands) end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local known = redis.call('DEL', KEYS[2])
if score then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
if score or known == 1 then
  redis.call('PUBLISH', KEYS[3], 'revoke ' .. ARGV[1])
end
if score and tonumber(score) > now_ms then
  return 1
end
return 0
