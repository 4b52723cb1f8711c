-- release.lua: free the slots of a batch of leases (or drop waiter tickets), and hand
-- the freed slots straight to the oldest queued tickets. Idempotent.
--
-- KEYS[1..5]      meta, leases, queue, tickets, waiters (see _shared.lua)
-- KEYS[5 + i]     lease hash of id i, for i = 1 .. n
-- KEYS[5 + n + j] lease hash of the caller's waiting id j, for j = 1 .. m: a slot handed
--                 to one of these is claimed at once (its hash written here)
-- ARGV[1]         "<id 1> <tomb 1> ... <id n> <tomb n>": the lease ids, each with a
--                 tombstone ms: when > 0 (its acquire was cancelled) and the id is
--                 unknown, leave a tombstone (field "cancelled" in its hash, for that
--                 long) so that an acquire of the id that arrives later grants and
--                 queues nothing, whatever order the two calls arrive in
-- ARGV[2]         the caller's constants (see _shared.lua)
-- ARGV[3]         "<waiting id 1> ... <waiting id m>" (optional)
--
-- Returns one string: "<now_ms> <status 1> ... <status n>", then own grants (see
-- _shared.lua); status: 1 released (the lease was live), 2 expired (past its hard
-- expiry, or its record outlived it), 3 dequeued (a waiter ticket, no slot), 0 unknown
-- (never granted, already released, revoked, or the data was lost).
-- Cost: O(log N) per id, plus O(log N + batch) to hand off when a slot was freed.

local now, now_us = clock()

local out = {now}
local freed = false
local i = 0
for id, tomb in string.gmatch(ARGV[1], '(%S+) (%d+)') do
  i = i + 1
  local key = KEYS[5 + i]
  local status = 0
  local score = redis.call('ZSCORE', KEYS[2], id)
  if score then
    redis.call('ZREM', KEYS[2], id)
    if redis.call('DEL', key) == 0 then
      redis.call('HDEL', KEYS[4], id) -- a handed-off grant, not claimed yet
    end
    freed = true
    status = 2
    if tonumber(score) > now then status = 1 end
  elseif redis.call('HGET', key, 'token') then
    redis.call('DEL', key)
    status = 2
  elseif redis.call('ZREM', KEYS[3], id) == 1 then
    redis.call('HDEL', KEYS[4], id)
    status = 3
  elseif tomb ~= '0' then
    redis.call('HSET', key, 'cancelled', '1')
    redis.call('PEXPIRE', key, tomb)
  end
  out[#out + 1] = status
end

local own = {}
if freed then
  local mine = {}
  local j = 0
  for id in string.gmatch(ARGV[3] or '', '%S+') do
    j = j + 1
    mine[id] = 5 + i + j
  end
  fill(now, now_us, config(ARGV[2]), mine, own)
end
return put_own(out, own)
