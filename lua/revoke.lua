-- revoke.lua: remove a lease by id (an operator action), tell its holder, and hand the
-- freed slot to the oldest queued ticket.
--
-- KEYS[1..5]  meta, leases, queue, tickets, waiters (see _shared.lua)
-- KEYS[6]     lease hash <prefix>:{P}:lease:<ARGV[2]>
-- ARGV[1]     the caller's constants (see _shared.lua)
-- ARGV[2]     lease id
--
-- Publishes "revoke <id>" when the lease was known (its holder then treats it as lost).
-- Returns one string: "<now_ms> <status>", then own grants (see _shared.lua); status:
--   REVOKE_WAS_LIVE (1): the lease was live (it is removed, its holder told)
--   REVOKE_NOT_LIVE (2): nothing live had that id (an expired one is removed too)
-- Cost: O(log N), plus O(log N + batch) to hand off.

local now, now_us = clock()
local cfg = config(ARGV[1])
local id = ARGV[2]

local score = redis.call('ZSCORE', KEYS[2], id)
local known = redis.call('DEL', KEYS[6])
if score then
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[4], id)
end
if score or known == 1 then
  redis.call('PUBLISH', EVENTS, 'revoke ' .. id)
end
local status = REVOKE_NOT_LIVE
if score and tonumber(score) > now then status = REVOKE_WAS_LIVE end
local own = {}
if score then fill(now, now_us, cfg, {}, own) end
return reply(string.format('%d %d', now, status), own)
