-- status.lua: a read-only snapshot of one pool, for operators (`leasepool status`,
-- `leasepool pools`, `leasepool exporter`). It writes nothing, so it runs through
-- EVALSHA_RO and a read-only ACL user may call it; expired leases are left for the
-- coordinators to reclaim (they do on every call).
--
-- KEYS[1..5]  meta, leases, queue, tickets, waiters (see _shared.lua)
-- ARGV[1]     the caller's constants (see _shared.lua; not read: the same layout as
--             every script)
-- ARGV[2]     the most live leases to list (an integer >= 1)
--
-- A key of the wrong type fails the call with "LEASEPOOL_STATE <key> is a <type>, not a
-- <type>", so the caller's error names the damaged key.
--
-- Returns an array (the one script that does: its items hold the tickets' free text):
--   [1] now_ms (server time)
--   [2] the meta hash's capacity field as stored (false when the field is missing)
--   [3] live leases (expiry after now)
--   [4] expired leases that no script has reclaimed yet
--   [5] queued tickets (the queue's size)
--   [6] up to ARGV[2] live leases, soonest expiry first, flat: id, expiry_ms, id, ...
--   [7] the tickets hash, flat: id, ticket, ...
--   [8] the waiting processes alive at now (origins)
--   [9] how many of the five keys exist (0: no such pool)
-- Cost: O(log N + limit + T + W) for N leases, T tickets and W waiting processes.

local now = clock()
local limit = tonumber(ARGV[2])
if not limit or limit < 1 then error({err = 'ERR leasepool: bad status limit'}) end

local kinds = {'hash', 'zset', 'zset', 'hash', 'zset'}
local present = 0
for i = 1, 5 do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' then
    present = present + 1
    if t ~= kinds[i] then
      error({err = 'LEASEPOOL_STATE ' .. KEYS[i] .. ' is a ' .. t .. ', not a ' .. kinds[i]})
    end
  end
end

local cap = redis.call('HGET', KEYS[1], 'capacity')
local live = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
local expired = redis.call('ZCOUNT', KEYS[2], '-inf', now)
local queued = redis.call('ZCARD', KEYS[3])
local leases = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'WITHSCORES',
  'LIMIT', 0, limit)
local tickets = redis.call('HGETALL', KEYS[4])
local alive = redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. now, '+inf')
return {now, cap, live, expired, queued, leases, tickets, alive, present}
