-- set_capacity.lua: change a pool's capacity; new free slots go to the queue's head.
-- Shrinking never revokes a lease.
--
-- KEYS[1..5]  meta, leases, queue, tickets, waiters (see _shared.lua)
-- ARGV[1]     the caller's constants (see _shared.lua)
-- ARGV[2]     the new capacity (an integer >= 1)
--
-- Returns one string: "<old capacity (-1 if the pool had none)> <live leases> <now_ms>",
-- then own grants (see _shared.lua).
-- Cost: O(log N + batch).

local now, now_us = clock()
local cfg = config(ARGV[1])

local old = tonumber(redis.call('HGET', KEYS[1], 'capacity')) or -1
redis.call('HSET', KEYS[1], 'capacity', ARGV[2])
local live = live_count(now)
local own = {}
if tonumber(ARGV[2]) > live then fill(now, now_us, cfg, {}, own) end
return put_own({old, live, now}, own)
