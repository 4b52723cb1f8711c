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
-- Returns one string: "<now_ms> <earliest_ms (-1 if none)> <queued tickets (-1: not
-- counted)> <capacity> <revived>", then "<status> <a> <b> <c>" per request, then own
-- grants (see _shared.lua); revived is 1 when queueing found the caller's process not
-- counted alive (its older tickets may have been dropped: it should check them):
--   status 1: granted, a = token, b = soft_ms, c = hard_ms (also when this id already
--             holds a live slot, or its handed-off grant is claimed here: a retry)
--   status 0: queued, a = enqueue sequence (also when already queued: a retry)
--   status 2: refused (pool full, or with fair=1 tickets are queued), a = live leases
--   status -1: this id's acquire was cancelled (a tombstone, see release.lua)
-- A stored capacity, fence or qseq that is not an integer in range fails the call before
-- it writes anything ("LEASEPOOL_STATE <key> field <field> ..."). Capacity 0 (paused)
-- refuses or queues every request.
-- Cost: O(log N) per request, plus O(log N + batch) when the pool looks full.

local now, now_us = clock()
local cfg = config(ARGV[1])

-- Every stored number is checked before anything is written (a failed call changes
-- nothing).
local meta = redis.call('HMGET', KEYS[1], 'capacity', 'fence', 'qseq')
local cap = capacity_of(meta[1], cfg)
local fence = fence_of(meta[2])
if meta[3] then stored_int(KEYS[1], 'qseq', meta[3], MAX_INT) end
local old_fence = fence
local live = live_count(now)
local earliest_ms = -1
if cfg.fair or live >= cap then
  -- Expired leases never count (live_count looks at scores); they are removed, in a
  -- bounded batch, when the pool looks full (also by heartbeats and status).
  earliest_ms = reclaim_and_earliest(now, cfg.batch)
end
local queued = -1 -- not counted: without fair, a grant never looks at the queue
local own = {}
if cfg.fair then
  queued = redis.call('ZCARD', KEYS[3])
  if queued > 0 and live < cap then
    local granted, stopped
    granted, stopped, fence = hand_off(now, now_us, cap - live, fence, cfg, {}, own)
    live = live + granted
    queued = redis.call('ZCARD', KEYS[3])
  end
end

local out = {now, -1, queued, cap, 0}
local enqueued = false
for i = 2, #ARGV do
  local mode, lease_ms, grace_ms, id, owner =
    string.match(ARGV[i], '^([01]) (%d+) (%d+) (%S+) ?(.*)$')
  if not mode then error({err = 'ERR acquire.lua: malformed ARGV[' .. i .. ']'}) end
  local key = KEYS[4 + i]
  local rec = redis.call('HMGET', key, 'token', 'soft_ms', 'hard_ms', 'cancelled')
  local status, a, b, c = nil, 0, 0, 0
  if rec[4] then
    status = -1
  elseif rec[1] and hash_ms(4 + i, 'hard_ms', rec[3]) > now then
    status, a, b, c = 1, rec[1], rec[2], rec[3]
  elseif mode == '1' then
    local ticket = redis.call('HGET', KEYS[4], id)
    if ticket then
      if string.sub(ticket, 1, 1) == 'g' then
        local token, soft, hard = claim(id, 4 + i, ticket, now, cfg.margin)
        if token then status, a, b, c = 1, s(token), soft, hard end
      elseif redis.call('ZSCORE', KEYS[3], id) then
        status = 0
        enqueued = true
      end
    end
  end
  if status == nil then
    if live < cap and not (cfg.fair and queued > 0) then
      fence = next_token(fence, now_us)
      local soft = now + tonumber(lease_ms)
      local hard = soft + tonumber(grace_ms)
      set_expiry(id, hard, now)
      write_lease(key, owner, cfg.host, cfg.pid, fence, now, soft, hard, cfg.margin)
      live = live + 1
      status, a, b, c = 1, s(fence), soft, hard
    elseif mode == '1' then
      local seq = redis.call('HINCRBY', KEYS[1], 'qseq', 1)
      redis.call('ZADD', KEYS[3], seq, id)
      redis.call('HSET', KEYS[4], id, 'w|' .. lease_ms .. '|' .. grace_ms .. '|' .. cfg.origin
        .. '|' .. cfg.pid .. '|' .. cfg.host .. '|' .. owner)
      if queued >= 0 then queued = queued + 1 end
      enqueued = true
      status, a = 0, seq
    else
      status, a = 2, live
    end
  end
  out[#out + 1] = status
  out[#out + 1] = a
  out[#out + 1] = b
  out[#out + 1] = c
end
if fence ~= old_fence then redis.call('HSET', KEYS[1], 'fence', fence) end
if enqueued then
  if beat(now, cfg, true) then out[5] = 1 end
  if earliest_ms < 0 then earliest_ms = earliest(now) end
  out[2] = earliest_ms
end
out[3] = queued
return put_own(out, own)
