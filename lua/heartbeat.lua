-- heartbeat.lua: a waiting process's heartbeat; with ids, also claim the grants handed
-- to it and check its tickets; with full, also reclaim and hand free slots to the queue.
--
-- KEYS[1..5]  meta, leases, queue, tickets, waiters (see _shared.lua)
-- KEYS[5 + i] lease hash of id i, for i = 1 .. n (n at most 1000)
-- ARGV[1]     the caller's constants (see _shared.lua)
-- ARGV[2]     flags: "w" when the caller has waiting tickets: mark its process alive
--             until now + ticket ms, and if a lease has expired (nobody announces that)
--             run the full check; "f" for a full check: reclaim a batch of expired
--             leases, hand free slots to the queue, prune dead processes, report;
--             "k" (with "w"): also renew the TTLs of queue, tickets and waiters
-- ARGV[3]     "<id 1> ... <id n>" (optional): tickets of the caller, or grants handed
--             to it
--
-- For each id: a waiting ticket is reported waiting; a handed-off grant is claimed (its
-- lease hash written, its expiry moved from the claim deadline to its hard expiry); a
-- claimed live lease is reported granted; anything else is gone. A full check hands free
-- slots to the queue first, so a grant to one of these ids is claimed in the same call.
-- Returns one string: "<now_ms> <alive> <earliest_ms> <queued tickets> <capacity>",
-- then "<status> <token> <soft_ms> <hard_ms>" per id, then own grants (_shared.lua):
--   alive 0 when the caller's process was not counted alive before this call (its
--   tickets may have been dropped as dead: it should check them all), else 1;
--   earliest_ms: the earliest live expiry (-1 if none or not looked at);
--   queued and capacity: -1 unless a full check ran;
--   TICKET_GRANTED (1): a live lease, claimed (token, soft_ms, hard_ms)
--   TICKET_WAITING (2): still queued (token = soft_ms = hard_ms = 0)
--   TICKET_GONE (3): no ticket and no lease (the waiter must queue again)
-- Cost: O(1) without ids or full (TIME, ZADD, ZRANGE); O(log N) per id; O(log N + batch)
-- when full.

local now, now_us = clock()
local cfg = config(ARGV[1])
local flags = ARGV[2]
local ids = {}
for id in string.gmatch(ARGV[3] or '', '%S+') do ids[#ids + 1] = id end
if #ids > 1000 or #ids ~= #KEYS - 5 then
  error({err = 'ERR heartbeat.lua: ARGV[3] must name one id per lease key, at most 1000'})
end

local head = {now, 1, -1, -1, -1}
local full = string.find(flags, 'f', 1, true) ~= nil
if string.find(flags, 'w', 1, true) then
  if cold().beat(now, cfg, string.find(flags, 'k', 1, true) ~= nil) then head[2] = 0 end
  if not full then
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    if #first > 0 then
      if tonumber(first[2]) <= now then full = true else head[3] = tonumber(first[2]) end
    end
  end
end

local own = {}
if full then
  cold().reclaim(now, cfg.batch)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  local mine = {}
  for i = 1, #ids do mine[ids[i]] = 5 + i end
  fill(now, now_us, cfg, mine, own)
  head[3] = cold().earliest(now)
  head[4] = redis.call('ZCARD', KEYS[3])
  head[5] = cold().capacity(cfg)
end

local out = {string.format('%d %d %d %d %d', unpack(head))}
for i = 1, #ids do
  local id = ids[i]
  local status, token, soft, hard = TICKET_GONE, 0, 0, 0
  local ticket = redis.call('HGET', KEYS[4], id)
  local kind = ticket and string.sub(ticket, 1, 1)
  if kind == 'w' then
    if redis.call('ZSCORE', KEYS[3], id) then status = TICKET_WAITING end
  elseif kind == 'g' then
    local t, so, h = cold().claim(id, 5 + i, ticket, now, cfg.margin)
    if t then status, token, soft, hard = TICKET_GRANTED, t, so, h end
  else
    local rec = redis.call('HMGET', KEYS[5 + i], 'token', 'soft_ms', 'hard_ms')
    if rec[1] and hash_ms(5 + i, 'hard_ms', rec[3]) > now then
      status, token, soft, hard = TICKET_GRANTED, hash_ms(5 + i, 'token', rec[1]),
        hash_ms(5 + i, 'soft_ms', rec[2]), rec[3]
    end
  end
  out[i + 1] = string.format('%d %d %d %d', status, token, soft, hard)
end
return reply(table.concat(out, ' '), own)
