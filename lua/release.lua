-- release.lua: free the slots of a batch of leases (or drop waiter tickets), and hand
-- the freed slots straight to the oldest queued tickets. Idempotent.
--
-- KEYS[1..5]      meta, leases, queue, tickets, waiters (see _shared.lua)
-- KEYS[5 + i]     lease hash of id i, for i = 1 .. n
-- KEYS[5 + n + j] lease hash of the caller's waiting id j, for j = 1 .. m: a slot handed
--                 to one of these is claimed at once (its hash written here)
-- ARGV[1]         the caller's constants (see _shared.lua)
-- ARGV[2]         "<id 1> <tomb 1> ... <id n> <tomb n>": the lease ids, each with a
--                 tombstone ms: when > 0 (its acquire was cancelled) and the id is
--                 unknown, leave a tombstone (field "cancelled" in its hash, for that
--                 long) so that an acquire of the id that arrives later grants and
--                 queues nothing, whatever order the two calls arrive in
-- ARGV[3]         "<waiting id 1> ... <waiting id m>" (optional)
--
-- Returns one string: "<now_ms> <status 1> ... <status n>", then own grants (see
-- _shared.lua); status:
--   RELEASE_RELEASED (1): the lease was live
--   RELEASE_EXPIRED (2): past its hard expiry, or its record outlived it
--   RELEASE_DEQUEUED (3): a waiter ticket (no slot) left the queue
--   RELEASE_UNKNOWN (4): never granted, already released, revoked, or the data was lost
-- Cost: O(log N) per id, plus O(log N + batch) to hand off when a slot was freed. A
-- release of a live lease with nobody queued runs 5 commands: TIME, ZSCORE, ZREM, DEL,
-- ZRANGE (is anyone queued?), and it returns before the helpers of _shared.lua are
-- made (see "@helpers" there) and before the constants in ARGV[1] are read.

local now, now_us = clock()

local out = {string.format('%d', now)}
local freed = false
local i = 0
for id, tomb in string.gmatch(ARGV[2], '(%S+) (%d+)') do
  i = i + 1
  local key = KEYS[5 + i]
  local status = RELEASE_UNKNOWN
  local score = redis.call('ZSCORE', KEYS[2], id)
  if score then
    redis.call('ZREM', KEYS[2], id)
    if redis.call('DEL', key) == 0 then
      redis.call('HDEL', KEYS[4], id) -- a handed-off grant, not claimed yet
    end
    freed = true
    status = RELEASE_EXPIRED
    if tonumber(score) > now then status = RELEASE_RELEASED end
  elseif redis.call('HGET', key, 'token') then
    redis.call('DEL', key)
    status = RELEASE_EXPIRED
  elseif redis.call('ZREM', KEYS[3], id) == 1 then
    redis.call('HDEL', KEYS[4], id)
    status = RELEASE_DEQUEUED
  elseif tomb ~= '0' then
    redis.call('HSET', key, 'cancelled', '1')
    redis.call('PEXPIRE', key, tomb)
  end
  out[#out + 1] = status
end

if not freed then return reply(table.concat(out, ' '), {}) end
local heads = redis.call('ZRANGE', KEYS[3], 0, 0)
if #heads == 0 then return reply(table.concat(out, ' '), {}) end

-- @helpers: _shared.lua's helpers start here; a release that frees a slot nobody
-- queues for has returned by now without making them.

-- Someone queues: hand the freed slots on.
local mine = {}
local j = 0
for id in string.gmatch(ARGV[3] or '', '%S+') do
  j = j + 1
  mine[id] = 5 + i + j
end
local own = {}
fill(now, now_us, config(ARGV[1]), mine, own, heads)
return reply(table.concat(out, ' '), own)
