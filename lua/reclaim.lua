-- reclaim.lua: remove a bounded batch of expired leases, hand free slots to the queue's
-- head, and report the pool.
--
-- KEYS[1..5]  meta, leases, queue, tickets, waiters (see _shared.lua)
-- ARGV[1]     the caller's constants (see _shared.lua)
--
-- Expired lease hashes are not deleted here: each one carries a TTL of its own.
-- Returns one string: "<reclaimed> <now_ms> <live> <capacity (-1 if unset)>
-- <earliest_ms (-1 if none)>", then own grants (see _shared.lua).
-- Cost: O(log N + batch).

local now, now_us = clock()
local cfg = config(ARGV[1])

local reclaimed = reclaim(now, cfg.batch)
local own = {}
local cap = tonumber(redis.call('HGET', KEYS[1], 'capacity')) or -1
if cap > 0 then fill(now, now_us, cfg, {}, own) end
return put_own({reclaimed, now, live_count(now), cap, earliest(now)}, own)
