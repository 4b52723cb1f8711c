-- acquire.lua: grant slots to a batch of requests, or queue their waiter tickets.
--
-- KEYS[1..5]  meta, leases, queue, tickets, waiters (see _shared.lua)
-- KEYS[5 + i] lease hash <prefix>:{P}:lease:<id i>, for i = 1 .. n
-- ARGV[1]     the caller's constants (see _shared.lua)
-- ARGV[1 + i] request i, "<mode> <lease ms> <grace ms> <lease id> <owner>":
--             soft expiry = now + lease ms; hard expiry = soft expiry + grace ms;
--             mode 0: grant or refuse; mode 1: grant or queue a waiter ticket
--
-- Requests are taken in order. A request is granted when a live slot is free and, with
-- fair=1, no ticket is queued (with fair=1 free slots first go to the queue's head).
-- Without fair a request may take a free slot ahead of queued tickets: free slots only
-- exist then when nobody handed them off (leases that expired instead of being released,
-- or a hand-off stopped by its batch bound). Queueing a ticket also marks the caller's
-- process alive (see heartbeat.lua).
--
-- Returns one string: "<now_ms> <earliest_ms> <queued> <capacity> <revived>", then
-- "<status> <value> <soft_ms> <hard_ms>" per request, then own grants (see _shared.lua).
--   earliest_ms: the earliest live expiry when a ticket was queued (-1: none, or not
--   looked at); queued: tickets in the queue (-1: not counted, without fair); revived:
--   1 when queueing found the caller's process not counted alive (its older tickets may
--   have been dropped: it should check them), else 0.
--   ACQUIRE_GRANTED (1): value = token (also when this id already holds a live slot, or
--                        its handed-off grant is claimed here: a retry)
--   ACQUIRE_QUEUED (2): value = enqueue sequence (0 when already queued: a retry);
--                       soft_ms = hard_ms = 0
--   ACQUIRE_REFUSED (3): pool full or paused, or with fair=1 tickets are queued;
--                        value = live leases
--   ACQUIRE_CANCELLED (4): this id's acquire was cancelled (a tombstone, see release.lua)
-- A stored capacity, fence or qseq that is not an integer in range fails the call before
-- it writes anything ("LEASEPOOL_STATE <key> field <field> ..."). Capacity 0 (paused)
-- refuses or queues every request.
-- Cost: O(log N) per request, plus O(log N + batch) when the pool looks full. A grant
-- with nobody queued and fair=0 runs 9 commands: TIME, HMGET (meta), ZCOUNT, HMGET (its
-- lease hash: a retry or a tombstone?), ZADD, PEXPIRE, HSET, PEXPIREAT, HSET (fence).

local now, now_us = clock()
local cfg = config(ARGV[1])

-- Every stored number is checked before anything is written (a failed call changes
-- nothing).
local meta = redis.call('HMGET', KEYS[1], 'capacity', 'fence', 'qseq')
local fence = fence_of(meta[2])
if meta[3] then stored_int(KEYS[1], 'qseq', meta[3], MAX_INT) end
local cap = capacity_of(meta[1], cfg) -- (last: it writes cap0 to a pool that has none)
local old_fence = fence
local live = live_count(now)
local earliest_ms = -1
if cfg.fair or live >= cap then
  -- Expired leases never count (live_count looks at scores); they are removed, in a
  -- bounded batch, when the pool looks full (also by heartbeats and status).
  earliest_ms = cold().reclaim_and_earliest(now, cfg.batch)
end
local queued = -1 -- not counted: without fair, a grant never looks at the queue
local own = {}
if cfg.fair then
  queued = redis.call('ZCARD', KEYS[3])
  if queued > 0 and live < cap then
    local granted, stopped
    granted, stopped, fence = cold().hand_off(now, now_us, cap - live, fence, cfg, {}, own)
    live = live + granted
    queued = redis.call('ZCARD', KEYS[3])
  end
end

local rows = {}
local enqueued = false
for i = 2, #ARGV do
  local mode, lease_ms, grace_ms, id, owner =
    string.match(ARGV[i], '^([01]) (%d+) (%d+) (%S+) ?(.*)$')
  if not mode then error({err = 'ERR acquire.lua: malformed ARGV[' .. i .. ']'}) end
  local key = KEYS[4 + i]
  local rec = redis.call('HMGET', key, 'token', 'soft_ms', 'hard_ms', 'cancelled')
  local status, a, b, c = nil, 0, 0, 0
  if rec[4] then
    status = ACQUIRE_CANCELLED
  elseif rec[1] and hash_ms(4 + i, 'hard_ms', rec[3]) > now then
    status, a, b, c = ACQUIRE_GRANTED, hash_ms(4 + i, 'token', rec[1]),
      hash_ms(4 + i, 'soft_ms', rec[2]), rec[3]
  elseif mode == '1' then
    local ticket = redis.call('HGET', KEYS[4], id)
    if ticket then
      if string.sub(ticket, 1, 1) == 'g' then
        local token, soft, hard = cold().claim(id, 4 + i, ticket, now, cfg.margin)
        if token then status, a, b, c = ACQUIRE_GRANTED, token, soft, hard end
      elseif redis.call('ZSCORE', KEYS[3], id) then
        status = ACQUIRE_QUEUED
        enqueued = true
      end
    end
  end
  if status == nil then
    if live < cap and not (cfg.fair and queued > 0) then
      fence = next_token(fence, now_us)
      local soft = now + tonumber(lease_ms)
      local hard = soft + tonumber(grace_ms)
      set_expiry(id, hard, now, false, live)
      write_lease(key, owner, cfg.host, cfg.pid, fence, now, soft, hard, cfg.margin)
      live = live + 1
      status, a, b, c = ACQUIRE_GRANTED, fence, soft, hard
    elseif mode == '1' then
      local seq = redis.call('HINCRBY', KEYS[1], 'qseq', 1)
      redis.call('ZADD', KEYS[3], seq, id)
      redis.call('HSET', KEYS[4], id, 'w|' .. lease_ms .. '|' .. grace_ms .. '|' .. cfg.origin
        .. '|' .. cfg.pid .. '|' .. cfg.host .. '|' .. owner)
      if queued >= 0 then queued = queued + 1 end
      enqueued = true
      status, a = ACQUIRE_QUEUED, seq
    else
      status, a = ACQUIRE_REFUSED, live
    end
  end
  rows[i - 1] = string.format('%d %d %d %d', status, a, b, c)
end
if fence ~= old_fence then redis.call('HSET', KEYS[1], 'fence', fence) end
local revived = 0
if enqueued then
  if cold().beat(now, cfg, true) then revived = 1 end
  if earliest_ms < 0 then earliest_ms = cold().earliest(now) end
else
  earliest_ms = -1
end
local head = string.format('%d %d %d %d %d', now, earliest_ms, queued, cap, revived)
if #rows > 0 then head = head .. ' ' .. table.concat(rows, ' ') end
return reply(head, own)
