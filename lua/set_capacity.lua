-- set_capacity.lua: change a pool's capacity; new free slots go to the queue's head.
-- Shrinking never revokes a lease.
--
-- KEYS[1..5]  meta, leases, queue, tickets, waiters (see _shared.lua)
-- ARGV[1]     the caller's constants (see _shared.lua)
-- ARGV[2]     the new capacity (an integer from 0, paused, to 1000000)
--
-- Returns one string: "<now_ms> <old capacity (-1 if the pool had none, or a damaged
-- one: this is how an operator repairs it)> <live leases>", then own grants (see
-- _shared.lua).
-- A stored fence that is damaged fails the hand-off (LEASEPOOL_STATE) after the new
-- capacity is written.
-- Cost: O(log N + batch).

local now, now_us = clock()
local cfg = config(ARGV[1])

local new = string.match(ARGV[2], '^%d+$') and tonumber(ARGV[2])
if not new or new > MAX_CAPACITY then
  error({err = 'ERR set_capacity.lua: capacity must be an integer from 0 to 1000000'})
end
local raw = redis.call('HGET', KEYS[1], 'capacity')
local old = -1
if raw and string.match(raw, '^%d+$') and tonumber(raw) <= MAX_CAPACITY then
  old = tonumber(raw)
end
redis.call('HSET', KEYS[1], 'capacity', new)
local live = live_count(now)
local own = {}
if new > live then fill(now, now_us, cfg, {}, own) end
return reply(string.format('%d %d %d', now, old, live), own)
