-- renew.lua: extend a batch of leases (all of one host's leases) in one call.
--
-- KEYS[1..5]   meta, leases, queue, tickets, waiters (see _shared.lua)
-- KEYS[5 + i]  lease hash <prefix>:{P}:lease:<id i>, for i = 1 .. n
-- ARGV[1]      the caller's constants (see _shared.lua; margin: a lease hash expires
--              this long after its hard expiry)
-- ARGV[2i]     lease id i
-- ARGV[2i + 1] lease ms i: the new soft expiry is now + lease ms (0: no extension)
--
-- A lease is extended only while it is still live, and never shortened:
-- soft = max(old soft, now + lease ms), hard = max(old hard, soft + grace ms), where
-- grace ms = hard_ms - soft_ms of its record. A handed-off grant not claimed yet is
-- claimed first (see heartbeat.lua).
-- Returns one string: "<now_ms>", then "<status> <token> <soft_ms> <hard_ms>" per id:
--   RENEW_RENEWED (1): still live; soft_ms and hard_ms are its new expiries
--   RENEW_GONE (2): expired, revoked or lost (token = soft_ms = hard_ms = 0)
-- Cost: O(n log N).

local now = clock()
local cfg = config(ARGV[1])

local out = {now}
for i = 1, #KEYS - 5 do
  local key = KEYS[5 + i]
  local id = ARGV[2 * i]
  local lease_ms = tonumber(ARGV[2 * i + 1])
  local score = redis.call('ZSCORE', KEYS[2], id)
  local rec = redis.call('HMGET', key, 'token', 'soft_ms', 'hard_ms')
  if score and not rec[1] then
    local ticket = redis.call('HGET', KEYS[4], id)
    if ticket and cold().claim(id, 5 + i, ticket, now, cfg.margin) then
      score = redis.call('ZSCORE', KEYS[2], id)
      rec = redis.call('HMGET', key, 'token', 'soft_ms', 'hard_ms')
    end
  end
  if score and tonumber(score) > now and rec[1] then
    local old_soft = hash_ms(5 + i, 'soft_ms', rec[2])
    local old_hard = hash_ms(5 + i, 'hard_ms', rec[3])
    local soft = math.max(old_soft, now + lease_ms)
    local hard = math.max(tonumber(score), soft + (old_hard - old_soft))
    if soft ~= old_soft or hard ~= old_hard or hard ~= tonumber(score) then
      set_expiry(id, hard, now, true)
      redis.call('HSET', key, 'soft_ms', soft, 'hard_ms', hard, 'renewed_ms', now)
      redis.call('PEXPIREAT', key, hard + cfg.margin)
    end
    out[#out + 1] = RENEW_RENEWED
    out[#out + 1] = s(stored_int(key, 'token', rec[1], MAX_INT))
    out[#out + 1] = soft
    out[#out + 1] = hard
  else
    if score and tonumber(score) > now then
      -- A live slot without its record (partial data loss): drop it, it is lost.
      redis.call('ZREM', KEYS[2], id)
    end
    out[#out + 1] = RENEW_GONE
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return table.concat(out, ' ')
