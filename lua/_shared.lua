-- _shared.lua: constants and helpers that leasepool includes in every script but init.lua.
-- It is not an operation of its own; it only defines constants and local functions.
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
-- ARGV[1]  the caller's constants, in every script (leasepool._redis.protocol's
--          encode_constants): "cap0|batch|margin|claim|ticket|fair|origin|pid|host"
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
-- grants to the caller's own tickets come back in the reply instead (see reply()), as
-- "own grants": their count, then "<id> <token> <soft_ms> <hard_ms> <claim_ms>" each.
--
-- Replies: every script but status.lua returns one string of fields separated by single
-- spaces, the server time now_ms first (lease ids and origins hold no whitespace, and
-- no reply carries free text): for redis-py's pure-Python parser one string is far
-- cheaper than an array (a read per element). status.lua, an operator's snapshot with
-- the tickets' free text, returns an array, now_ms first too. All numbers stay below
-- 2^53 (tokens are server microseconds), and only strings are stored. Numbers go to
-- redis.call as numbers (Redis writes them in full); replies write them with
-- string.format('%d'); in stored strings, ms times are joined as they are (13 digits,
-- exact under Lua's "%.14g") and tokens go through s().
--
-- Stored numbers are checked before any write: capacity must be an integer from 0
-- (paused: nothing is granted, waiters wait) to 1000000; fence and qseq integers below
-- 2^53; a lease hash's times integers. Anything else fails the whole call with
-- "LEASEPOOL_STATE <key> field <field> ..." (the client raises CoordinatorStateError).
--
-- Key lifetimes: nothing a process leaves outlives it for long, even when nobody uses
-- the pool again. The leases zset lives at least SLACK ms past its latest live score
-- (set_expiry); queue, tickets and waiters at least SLACK ms past the last heartbeat's
-- liveness window or claim deadline; each TTL is extended (by SLACK at a time, never
-- shortened below what a live entry needs) whenever a script adds something that needs
-- it (queue, tickets and waiters: by every enqueue and every 30 s by each waiting
-- process, see beat()). meta has no TTL (its capacity and fence must persist).
--
-- Server time: a script's cost is mostly its redis.call()s and the Lua it runs around
-- them, closures included (each `local function` is made again on every call). So the
-- helpers come after a "-- @helpers" line (a script may place them later: release.lua
-- does, after its fast path), the ones that only slow paths need live in cold(), made
-- on first use, and a grant or a release that finds nobody queued runs nine or five
-- commands (see their headers).

if redis.replicate_commands then pcall(redis.replicate_commands) end

-- Statuses, one set per meaning; leasepool._redis.protocol mirrors each as an IntEnum
-- (AcquireStatus, ReleaseStatus, TicketStatus, RenewStatus, RevokeStatus).
local ACQUIRE_GRANTED, ACQUIRE_QUEUED, ACQUIRE_REFUSED, ACQUIRE_CANCELLED = 1, 2, 3, 4
local RELEASE_RELEASED, RELEASE_EXPIRED, RELEASE_DEQUEUED, RELEASE_UNKNOWN = 1, 2, 3, 4
local TICKET_GRANTED, TICKET_WAITING, TICKET_GONE = 1, 2, 3
local RENEW_RENEWED, RENEW_GONE = 1, 2
local REVOKE_WAS_LIVE, REVOKE_NOT_LIVE = 1, 2

local function s(n) return string.format('%.0f', n) end

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

-- The reply: `head` (the script's own fields, now_ms first), then the own grants: their
-- count, five fields each. string.format('%d') writes every number in full (up to 2^53)
-- in one call, which is cheaper than a table.concat of numbers.
local function reply(head, own)
  local n = #own
  if n == 0 then return head .. ' 0' end
  local parts = {head, n}
  for i = 1, n do
    local g = own[i]
    parts[i + 2] = string.format('%s %d %d %d %d', g[1], g[2], g[3], g[4], g[5])
  end
  return table.concat(parts, ' ')
end

-- @helpers ------------------------------------------------------------------------
-- Everything above is the base every script starts with. The helpers below go where a
-- script has a line starting "-- @helpers" (else right here): closures are made again
-- on every call and cost server time (measured: see docs/architecture.md), so a fast
-- path that needs none of them returns before they are made.

local EVENTS = string.sub(KEYS[1], 1, -5) .. 'events'

local MAX_CAPACITY = 1000000
local MAX_INT = 9007199254740990 -- below 2^53: +1 stays exact in a double
local SLACK = 60000

-- A stored integer field of `key`: digits only (no sign, point or exponent), <= `max`.
local function stored_int(key, field, raw, max)
  local n = type(raw) == 'string' and string.match(raw, '^%d+$') and tonumber(raw)
  if not n or n > max then
    local shown = type(raw) == 'string' and string.sub(raw, 1, 40) or type(raw)
    error({err = 'LEASEPOOL_STATE ' .. key .. ' field ' .. field .. ' is ' .. shown
      .. ', expected an integer from 0 to ' .. s(max)})
  end
  return n
end

-- The stored capacity (`raw`, as read from meta); a pool without one gets cfg.cap0.
local function capacity_of(raw, cfg)
  if not raw then
    redis.call('HSET', KEYS[1], 'capacity', cfg.cap0)
    return tonumber(cfg.cap0)
  end
  return stored_int(KEYS[1], 'capacity', raw, MAX_CAPACITY)
end

-- The stored fence (0 when there is none yet).
local function fence_of(raw)
  if not raw then return 0 end
  return stored_int(KEYS[1], 'fence', raw, MAX_INT)
end

-- A lease hash's time field (`raw` from HMGET of KEYS[k]), checked.
local function hash_ms(k, field, raw)
  return stored_int(KEYS[k], field, raw, MAX_INT)
end

-- Set lease `id`'s expiry in the leases zset to `until_ms` (`xx`: only if present), and
-- keep the zset alive SLACK ms past it, never shortening its TTL below a live score.
-- `live` (optional): the caller's count of the live leases already in the zset. With
-- none live, no other score needs covering: one PEXPIRE. With some, the zset has a TTL
-- that covers them: PEXPIRE ... GT extends it and never shortens it. Without `live` the
-- TTL is read first (-2: no zset yet, it will hold this lease alone).
local function set_expiry(id, until_ms, now, xx, live)
  local ms = until_ms - now + SLACK
  if live then
    redis.call('ZADD', KEYS[2], until_ms, id)
    if live == 0 then
      redis.call('PEXPIRE', KEYS[2], ms)
    else
      redis.call('PEXPIRE', KEYS[2], ms, 'GT')
    end
    return
  end
  local ttl = redis.call('PTTL', KEYS[2])
  if xx then
    if ttl == -2 then return end
    redis.call('ZADD', KEYS[2], 'XX', until_ms, id)
  else
    redis.call('ZADD', KEYS[2], until_ms, id)
  end
  if ttl == -1 then -- (a zset with no TTL: cover every score in it)
    local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
    ms = math.max(ms, tonumber(last[2]) - now + SLACK)
  end
  if ttl < 0 or ttl < ms - SLACK then redis.call('PEXPIRE', KEYS[2], ms) end
end

local function live_count(now)
  return redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
end

local function next_token(fence, now_us)
  return math.max(fence + 1, now_us)
end

local function write_lease(key, owner, host, pid, token, acquired, soft, hard, margin)
  redis.call('HSET', key, 'owner', owner, 'host', host, 'pid', pid, 'token', token,
    'acquired_ms', acquired, 'soft_ms', soft, 'hard_ms', hard)
  redis.call('PEXPIREAT', key, hard + margin)
end

-- The helpers that only slow paths need: queued tickets, hand-offs, claims, reclaims.
-- They are made on a script's first use of cold(): every closure a script makes costs
-- server time on every call, and a grant or a release that finds nobody queued needs
-- none of these (measured: making them cost an acquire + release pair about 13% of its
-- server time; see docs/architecture.md).
local cold_helpers
local function cold()
  if cold_helpers then return cold_helpers end
  -- Let `key` (which exists) live at least `ms` more: extend its TTL by SLACK beyond that
  -- when it is shorter, never shorten it. `floor` (optional) is a further lower bound for
  -- a key that had no TTL yet.
  local function keep(key, ms, floor)
    local ttl = redis.call('PTTL', key)
    if ttl == -1 and floor then ms = math.max(ms, floor) end
    if ttl == -1 or (ttl >= 0 and ttl < ms) then redis.call('PEXPIRE', key, ms + SLACK) end
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

  local function capacity(cfg)
    return capacity_of(redis.call('HGET', KEYS[1], 'capacity'), cfg)
  end

  -- Mark the caller's process alive (it has tickets) until now + cfg.ticket. Returns true
  -- when it was not counted alive before (its entry was gone: hand_off removes the entry of
  -- a process it finds dead, and drops its tickets), so the caller can check its tickets.
  -- `renew_ttl`: also let queue, tickets and waiters live max(ticket, claim) + SLACK ms
  -- more (an enqueue does; a waiting process's heartbeat does every 30 s, which SLACK
  -- covers, so that a plain heartbeat stays three commands).
  local function beat(now, cfg, renew_ttl)
    local new = redis.call('ZADD', KEYS[5], now + cfg.ticket, cfg.origin) == 1
    if renew_ttl then
      local ms = math.max(cfg.ticket, cfg.claim) + SLACK
      for k = 3, 5 do redis.call('PEXPIRE', KEYS[k], ms) end
    end
    return new
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
    set_expiry(id, hard, now)
    return token, soft, hard
  end

  -- Grant up to `free` slots to the oldest live tickets, examining at most cfg.batch.
  -- `fence` is the pool's last fencing token (the caller writes back the new one, which
  -- is returned). `mine` maps a lease id to the KEYS index of its hash when the caller
  -- passed it: such a grant is claimed at once. Grants to tickets of cfg.origin are
  -- appended to `own` as {id, token, soft, hard, claim_ms} (claim_ms == hard when already
  -- claimed); the others are published (see "Origins" above: a grant nobody receives is
  -- not made). Tickets of dead processes met on the way are dropped. `heads`, if given,
  -- are the queue's first ids, already read.
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
        local token, soft, hard, until_ms
        if lease_ms and alive[origin] then
          token = next_token(fence, now_us)
          soft = now + lease_ms
          hard = soft + grace_ms
          until_ms = hard
          if not mine[id] then until_ms = math.min(hard, now + cfg.claim) end
          local text = origin .. ' ' .. id .. ' ' .. s(token) .. ' ' .. soft .. ' ' .. hard
            .. ' ' .. until_ms
          if origin ~= '' and origin == cfg.origin then
            own[#own + 1] = {id, token, soft, hard, until_ms}
          else
            published[#published + 1] = text
          end
        end
        if token then
          fence = token
          local k = mine[id]
          if k then
            write_lease(KEYS[k], owner, host, pid, fence, now, soft, hard, cfg.margin)
            redis.call('HDEL', KEYS[4], id)
          else
            redis.call('HSET', KEYS[4], id, 'g|' .. s(fence) .. '|' .. now .. '|' .. soft
              .. '|' .. hard .. '|' .. pid .. '|' .. host .. '|' .. owner)
            keep(KEYS[4], cfg.claim)
          end
          set_expiry(id, until_ms, now)
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

  cold_helpers = {keep = keep, reclaim = reclaim, capacity = capacity, beat = beat,
    claim = claim, hand_off = hand_off, earliest = earliest,
    reclaim_and_earliest = reclaim_and_earliest}
  return cold_helpers
end

-- Hand every free slot to the queue, if anyone queues (and save the new fence).
-- Publishes "free <n>" when the batch bound left free slots with tickets still queued
-- (a waiting process then goes on). `heads` (optional): the queue's first id, already
-- read. Returns the number of grants.
local function fill(now, now_us, cfg, mine, own, heads)
  heads = heads or redis.call('ZRANGE', KEYS[3], 0, 0)
  if #heads == 0 then return 0 end
  local meta = redis.call('HMGET', KEYS[1], 'capacity', 'fence')
  local free = capacity_of(meta[1], cfg) - live_count(now)
  local old = fence_of(meta[2])
  local granted, more, fence = cold().hand_off(now, now_us, free, old, cfg, mine, own, heads)
  if fence ~= old then redis.call('HSET', KEYS[1], 'fence', fence) end
  if more then redis.call('PUBLISH', EVENTS, 'free ' .. (free - granted)) end
  return granted
end
