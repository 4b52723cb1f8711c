-- renew.lua: extend a batch of leases (all of one host's leases) in one call.
--
-- KEYS[1]      leases zset  <prefix>:{P}:leases
-- KEYS[1 + i]  lease hash   <prefix>:{P}:lease:<id i>, for i = 1 .. n
-- ARGV[1]      record margin ms: a lease hash expires this long after hard expiry
-- ARGV[2i]     lease id i
-- ARGV[2i + 1] lease ms i: the new soft expiry is now + lease ms
--
-- A lease is extended only when it is still live, and never shortened:
-- soft = max(old soft, now + lease ms), hard = max(old hard, soft + grace ms).
-- Returns {now_ms, token_1, soft_1, hard_1, ..., token_n, soft_n, hard_n};
-- token 0 means that lease is gone (expired, revoked, or lost).
-- Cost: O(n log N).

if redis.replicate_commands then pcall(redis.replicate_commands) end

local function s(n) return string.format('%.0f', n) end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local margin = tonumber(ARGV[1])

local out = {now_ms}
for i = 2, #KEYS do
  local id = ARGV[2 * i - 2]
  local lease_ms = tonumber(ARGV[2 * i - 1])
  local score = redis.call('ZSCORE', KEYS[1], id)
  local rec = redis.call('HMGET', KEYS[i], 'token', 'soft_ms', 'grace_ms')
  if score and tonumber(score) > now_ms and rec[1] then
    local soft = math.max(tonumber(rec[2]), now_ms + lease_ms)
    local hard = math.max(tonumber(score), soft + tonumber(rec[3]))
    redis.call('ZADD', KEYS[1], 'XX', s(hard), id)
    redis.call('HSET', KEYS[i], 'soft_ms', s(soft), 'hard_ms', s(hard), 'renewed_ms', s(now_ms))
    redis.call('PEXPIREAT', KEYS[i], s(hard + margin))
    out[#out + 1] = tonumber(rec[1])
    out[#out + 1] = soft
    out[#out + 1] = hard
  else
    if score and tonumber(score) > now_ms then
      -- A live slot without its record (partial data loss): drop it, it is lost.
      redis.call('ZREM', KEYS[1], id)
    end
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
