-- reclaim.lua: remove a bounded batch of expired leases, hand free slots to the queue's
-- head, and report the pool.
--
-- KEYS[1..5]  meta, leases, queue, tickets, waiters (see _shared.lua)
-- ARGV[1]     the caller's constants (see _shared.lua)
--
-- Expired lease hashes are not deleted here: each one carries a TTL of its own. A
-- damaged stored capacity fails the call (LEASEPOOL_STATE) after the reclaim.
-- Returns one string: "<now_ms> <reclaimed> <live> <capacity (-1 if unset)>
-- <earliest_ms (-1 if none)>", then own grants (see _shared.lua).
-- Cost: O(log N + batch).

local now, now_us = clock()
local cfg = config(ARGV[1])

local reclaimed = cold().reclaim(now, cfg.batch)
local own = {}
local raw = redis.call('HGET', KEYS[1], 'capacity')
local cap = -1
if raw then cap = stored_int(KEYS[1], 'capacity', raw, MAX_CAPACITY) end
if cap > 0 then fill(now, now_us, cfg, {}, own) end
local head = string.format('%d %d %d %d %d', now, reclaimed, live_count(now), cap,
  cold().earliest(now))
return reply(head, own)
