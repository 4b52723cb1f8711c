-- _shared.lua: helpers that leasepool prepends to every script but init.lua.
-- It is not an operation of its own; it only defines local functions.
--
-- Every script that includes it takes the same first five keys, then lease hashes:
-- KEYS[1]  meta hash    <prefix>:{P}:meta    capacity, fence (last fencing token),
--                                            qseq (last enqueue sequence)
-- KEYS[2]  leases zset  <prefix>:{P}:leases  lease id -> expiry ms, server time: the hard
--                                            expiry, or the claim deadline of a handed-off
--                                            grant that its waiter has not claimed yet
-- KEYS[3]  queue zset   <prefix>:{P}:queue   waiting lease id -> enqueue sequence
-- KEYS[4]  tickets hash <prefix>:{P}:tickets lease id -> ticket (below)
-- KEYS[5]  waiters zset <prefix>:{P}:waiters origin -> ms until which that waiting
--                                            process counts as alive (its heartbeat)
-- KEYS[6..] lease hashes <prefix>:{P}:lease:<id>, as each script says
-- The pool's pub/sub channel <prefix>:{P}:events is a channel, not a key: its name is
-- derived from KEYS[1].
-- ARGV[1]  the caller's constants: "cap0|batch|margin|claim|ticket|fair|origin|pid|host"
--          cap0    capacity for a pool that has none yet (a stored capacity wins)
--          batch   tickets examined and expired leases removed per call, at most
--          margin  ms a lease hash outlives its hard expiry
--          claim   ms a handed-off grant stays live before its waiter claims it
--          ticket  ms a waiting process stays alive without a heartbeat
--          fair    1: no acquire is granted while tickets are queued
--          origin  the calling coordinator's id ("" for operator tools)
--          pid, host of the calling process (recorded in leases and tickets)
--
-- Tickets (fields joined by '|'; the owner comes last because it may contain '|'):
--   waiting "w|<lease_ms>|<grace_ms>|<origin>|<pid>|<host>|<owner>"
--           live while its origin is alive in KEYS[5]; a dead one is dropped when met,
--           and so is its origin's entry
--   granted "g|<token>|<acquired_ms>|<soft_ms>|<hard_ms>|<pid>|<host>|<owner>"
--           (handed off, not yet claimed: the lease hash is written by the claim)
--
-- A grant handed to a ticket of another process is published on the events channel as
-- "grant <origin> <id> <token> <soft_ms> <hard_ms> <claim_ms> ..." (six fields a grant);
-- grants to the caller's own tickets come back in the reply instead, as "own grants":
-- their count, then "<id> <token> <soft_ms> <hard_ms> <claim_ms>" each. Replies are one
-- string of fields separated by spaces (lease ids and origins hold no whitespace):
-- cheaper for clients to read than an array. All numbers stay below 2^53 (tokens are
-- server microseconds), and only strings are stored. Numbers go to redis.call as
-- numbers (Redis writes them in full); in strings, ms times are joined as they are
-- (13 digits, exact under Lua's "%.14g") and tokens go through s().

if redis.replicate_commands then pcall(redis.replicate_commands) end

local function s(n) return string.format('%.0f', n) end

local EVENTS = string.sub(KEYS[1], 1, -5) .. 'events'

local function clock()
  local t = redis.call('TIME')
  local sec, us = tonumber(t[1]), tonumber(t[2])
  return sec * 1000 + math.floor(us / 1000), sec * 1000000 + us
end

local function config(text)
  local cap0, batch, margin, claim, ticket, fair, origin, pid, host =
    string.match(text, '^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|([01])|([^|%s]*)|(%d*)|(.*)$')
  if not cap0 then error({err = 'ERR leasepool: malformed constants'}) end
  return {cap0 = cap0, batch = tonumber(batch), margin = tonumber(margin),
    claim = tonumber(claim), ticket = tonumber(ticket), fair = fair == '1',
    origin = origin, pid = pid, host = host}
end

-- The stored capacity (`raw`, as read from meta); a pool without one gets cfg.cap0.
local function capacity_of(raw, cfg)
  if not raw then
    redis.call('HSET', KEYS[1], 'capacity', cfg.cap0)
    return tonumber(cfg.cap0)
  end
  local cap = tonumber(raw)
  if not cap then
    error({err = 'LEASEPOOL_STATE ' .. KEYS[1] .. ' field capacity is not a number'})
  end
  return cap
end

local function capacity(cfg)
  return capacity_of(redis.call('HGET', KEYS[1], 'capacity'), cfg)
end

local function live_count(now)
  return redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
end

-- Remove at most `batch` expired leases (and the tickets of expired unclaimed grants).
local function reclaim(now, batch)
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, batch)
  if #expired > 0 then
    redis.call('ZREM', KEYS[2], unpack(expired))
    redis.call('HDEL', KEYS[4], unpack(expired))
  end
  return #expired
end

local function next_token(fence, now_us)
  return math.max(fence + 1, now_us)
end

local function write_lease(key, owner, host, pid, token, acquired, soft, hard, margin)
  redis.call('HSET', key, 'owner', owner, 'host', host, 'pid', pid, 'token', token,
    'acquired_ms', acquired, 'soft_ms', soft, 'hard_ms', hard)
  redis.call('PEXPIREAT', key, hard + margin)
end

-- Mark the caller's process alive (it has tickets) until now + cfg.ticket. Returns true
-- when it was not counted alive before (its entry was gone: hand_off removes the entry of
-- a process it finds dead, and drops its tickets), so the caller can check its tickets.
local function beat(now, cfg)
  return redis.call('ZADD', KEYS[5], now + cfg.ticket, cfg.origin) == 1
end

local function parse_waiting(ticket)
  if not ticket then return nil end
  local lease_ms, grace_ms, origin, pid, host, owner =
    string.match(ticket, '^w|(%d+)|(%d+)|([^|]*)|(%d*)|([^|]*)|(.*)$')
  if not lease_ms then return nil end
  return tonumber(lease_ms), tonumber(grace_ms), origin, pid, host, owner
end

local function parse_granted(ticket)
  if not ticket then return nil end
  local token, acquired, soft, hard, pid, host, owner =
    string.match(ticket, '^g|(%d+)|(%d+)|(%d+)|(%d+)|(%d*)|([^|]*)|(.*)$')
  if not token then return nil end
  return tonumber(token), tonumber(acquired), tonumber(soft), tonumber(hard), pid, host, owner
end

-- Claim a handed-off grant whose ticket is `ticket`: write its lease hash (KEYS[k]) and
-- move its expiry from the claim deadline to its hard expiry. Returns token, soft, hard,
-- or nil when the grant is gone (its claim deadline passed, or it was released).
local function claim(id, k, ticket, now, margin)
  local token, acquired, soft, hard, pid, host, owner = parse_granted(ticket)
  if not token then return nil end
  local score = redis.call('ZSCORE', KEYS[2], id)
  redis.call('HDEL', KEYS[4], id)
  if not score or tonumber(score) <= now then return nil end
  write_lease(KEYS[k], owner, host, pid, token, acquired, soft, hard, margin)
  redis.call('ZADD', KEYS[2], hard, id)
  return token, soft, hard
end

-- Grant up to `free` slots to the oldest live tickets, examining at most cfg.batch.
-- `fence` is the pool's last fencing token (the caller writes back the new one, which
-- is returned). `mine` maps a lease id to the KEYS index of its hash when the caller
-- passed it: such a grant is claimed at once. Grants to tickets of cfg.origin are
-- appended to `own` as {id, token, soft, hard, claim_ms} (claim_ms == hard when already
-- claimed); the others are published. Tickets of dead processes met on the way are
-- dropped. `heads`, if given, are the queue's first ids, already read.
-- Returns the number of grants, whether free slots remain with tickets still queued
-- (the batch bound stopped it), and the new fence.
local function hand_off(now, now_us, free, fence, cfg, mine, own, heads)
  if free <= 0 then return 0, false, fence end
  local published = {}
  local alive = {}
  local examined, granted = 0, 0
  while free > 0 and examined < cfg.batch do
    local want = math.min(free, cfg.batch - examined)
    if not heads or #heads > want then
      heads = redis.call('ZRANGE', KEYS[3], 0, want - 1)
    end
    if #heads == 0 then break end
    local tickets = redis.call('HMGET', KEYS[4], unpack(heads))
    local dead = {}
    for i = 1, #heads do
      local id = heads[i]
      examined = examined + 1
      local lease_ms, grace_ms, origin, pid, host, owner = parse_waiting(tickets[i])
      if lease_ms and alive[origin] == nil then
        local until_alive = redis.call('ZSCORE', KEYS[5], origin)
        alive[origin] = until_alive ~= false and tonumber(until_alive) > now
        if until_alive and not alive[origin] then
          redis.call('ZREM', KEYS[5], origin) -- its next heartbeat sees it was dropped
        end
      end
      if lease_ms and alive[origin] then
        fence = next_token(fence, now_us)
        local soft = now + lease_ms
        local hard = soft + grace_ms
        local k = mine[id]
        local until_ms = hard
        if k then
          write_lease(KEYS[k], owner, host, pid, fence, now, soft, hard, cfg.margin)
          redis.call('HDEL', KEYS[4], id)
        else
          until_ms = math.min(hard, now + cfg.claim)
          redis.call('HSET', KEYS[4], id, 'g|' .. s(fence) .. '|' .. now .. '|' .. soft
            .. '|' .. hard .. '|' .. pid .. '|' .. host .. '|' .. owner)
        end
        redis.call('ZADD', KEYS[2], until_ms, id)
        if origin ~= '' and origin == cfg.origin then
          own[#own + 1] = {id, fence, soft, hard, until_ms}
        else
          published[#published + 1] = origin .. ' ' .. id .. ' ' .. s(fence) .. ' ' .. soft
            .. ' ' .. hard .. ' ' .. until_ms
        end
        free = free - 1
        granted = granted + 1
      else
        dead[#dead + 1] = id
      end
    end
    redis.call('ZREM', KEYS[3], unpack(heads))
    if #dead > 0 then redis.call('HDEL', KEYS[4], unpack(dead)) end
    heads = nil
  end
  if #published > 0 then
    redis.call('PUBLISH', EVENTS, 'grant ' .. table.concat(published, ' '))
  end
  return granted, free > 0 and examined >= cfg.batch, fence
end

-- Hand every free slot to the queue, if anyone queues (and save the new fence).
-- Publishes "free <n>" when the batch bound left free slots with tickets still queued
-- (a waiting process then goes on). Returns the number of grants.
local function fill(now, now_us, cfg, mine, own)
  local heads = redis.call('ZRANGE', KEYS[3], 0, 0)
  if #heads == 0 then return 0 end
  local meta = redis.call('HMGET', KEYS[1], 'capacity', 'fence')
  local free = capacity_of(meta[1], cfg) - live_count(now)
  local old = tonumber(meta[2]) or 0
  local granted, more, fence = hand_off(now, now_us, free, old, cfg, mine, own, heads)
  if fence ~= old then redis.call('HSET', KEYS[1], 'fence', fence) end
  if more then redis.call('PUBLISH', EVENTS, 'free ' .. (free - granted)) end
  return granted
end

-- Append `own` grants to the reply `out` (a list of strings): a count, five fields each.
local function put_own(out, own)
  out[#out + 1] = #own
  for i = 1, #own do
    local g = own[i]
    out[#out + 1] = g[1] .. ' ' .. s(g[2]) .. ' ' .. g[3] .. ' ' .. g[4] .. ' ' .. g[5]
  end
  return table.concat(out, ' ')
end

-- The earliest expiry among live leases (-1 if none).
local function earliest(now)
  local first = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf',
    'WITHSCORES', 'LIMIT', 0, 1)
  if #first > 0 then return tonumber(first[2]) end
  return -1
end

-- Reclaim a batch of expired leases if there is any; return the earliest live expiry
-- (-1 if none). One call when nothing has expired.
local function reclaim_and_earliest(now, batch)
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #first > 0 and tonumber(first[2]) <= now then
    reclaim(now, batch)
    return earliest(now)
  end
  if #first > 0 then return tonumber(first[2]) end
  return -1
end
