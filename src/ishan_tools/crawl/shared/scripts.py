"""The Lua scripts of the shared frontier: every step two workers could race on, atomically.

Each script gets the crawl's key prefix as ARGV[1] and builds its keys from it (one Redis
server; the `{crawl-id}` hash tag keeps a crawl's keys in one slot). Times are Redis' own
(`TIME`, in milliseconds), so workers on machines with different clocks agree.

Keys under the prefix (see `keys.CrawlKeys`):
    opts            the crawl's options (JSON), set once by the first worker
    meta            hash: started, deadline, seeded, the options the scripts apply
                    (slots, obey, delay, cooldown, max_pages, max_bytes) and the dedupe
                    set's shape (L, s, n, load)
    stats           hash: queued, leased, dispatched, done, failed, skipped, bytes, tokens,
                    last (time of the last acknowledgement)
    hosts           set of every host seen
    h:HOST          hash: q (queued), f (in flight), d/e/k (done/failed/skipped), lo and hi
                    (depths queued), next (earliest next start), delay, r (robots loaded)
    q:HOST:DEPTH    list of URLs, in arrival order: one host's queue is (depth, arrival)
    ready           zset HOST -> time it may start: hosts with queued URLs and a free slot
    lease           zset URL -> lease deadline; holder: hash URL -> worker, token, depth, host
    reaped, late    a lease that expired (URL -> its token), URLs acknowledged after that
    seen:N          the dedupe set (dedupe.py): signed 64-bit URL hashes in intset
                    buckets, grown by linear hashing, so about 10 bytes a URL
    qv, redir       query variants per path hash; redirect targets -> the URL that claimed it
    robots, sites   robots.txt per host; start URL -> the host its site moved to
    workers, w:ID   zset worker -> last heartbeat; hash: joined, pages, what it reports
    seeding         the worker seeding the crawl (expires unless renewed)
    brk:HOST        the host's circuit breaker (ishan_tools.stores.breaker), read here by `claim`
"""

from __future__ import annotations

from ishan_tools.crawl.shared.dedupe import SEEN

__all__ = ["SCRIPTS"]

_COMMON = (
    r"""
redis.replicate_commands()
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local M = redis.call('HMGET', P .. 'meta', 'slots', 'obey', 'delay', 'cooldown',
  'max_pages', 'max_bytes', 'deadline', 'seeded', 'L', 's', 'n', 'load')
local SLOTS, OBEY, DELAY, COOLDOWN = tonumber(M[1]) or 8, tonumber(M[2]) or 1,
  tonumber(M[3]) or 0, tonumber(M[4]) or 30000
local MAX_PAGES, MAX_BYTES, DEADLINE = tonumber(M[5]) or 0, tonumber(M[6]) or 0,
  tonumber(M[7]) or 0
"""
    + SEEN
    + r"""
-- A host goes (back) into `ready` when it has queued URLs and a free slot; while its
-- robots.txt is not loaded yet, only when nothing of it is in flight.
local function make_ready(host)
  local h = redis.call('HMGET', P .. 'h:' .. host, 'q', 'f', 'next', 'r')
  local q, f = tonumber(h[1]) or 0, tonumber(h[2]) or 0
  if q > 0 and f < SLOTS and (OBEY == 0 or h[4] == '1' or f == 0) then
    redis.call('ZADD', P .. 'ready', 'NX', tonumber(h[3]) or 0, host)
  end
end

-- Put a URL back at the head of its depth in its host's queue (a lease that ended unfetched).
local function requeue(url, host, depth)
  local hk = P .. 'h:' .. host
  redis.call('LPUSH', P .. 'q:' .. host .. ':' .. depth, url)
  redis.call('HINCRBY', hk, 'q', 1)
  redis.call('HINCRBY', hk, 'f', -1)
  local lo = tonumber(redis.call('HGET', hk, 'lo'))
  if not lo or tonumber(depth) < lo then redis.call('HSET', hk, 'lo', depth) end
  redis.call('HINCRBY', P .. 'stats', 'queued', 1)
  redis.call('HINCRBY', P .. 'stats', 'leased', -1)
end

-- Queue new URLs: ARGV[first..], one each, 'depth TAB hash TAB query path hash or "" TAB url'.
-- Returns the refused ones as {index, 'query_trap'} pairs (duplicates are silent).
local function push_all(first, maxqv)
  local refused, touched, added = {}, {}, 0
  for i = first, #ARGV do
    local depth, m, qpath, url = string.match(ARGV[i], '^(%d+)\t([^\t]*)\t([^\t]*)\t(.*)$')
    local host = string.match(url, '^[^/]*//([^/]*)')
    if not seen_has(m) then
      if qpath ~= '' and (tonumber(redis.call('HGET', P .. 'qv', qpath)) or 0) >= maxqv then
        refused[#refused + 1] = i - first + 1
        refused[#refused + 1] = 'query_trap'
      else
        seen_add(m)
        if qpath ~= '' then redis.call('HINCRBY', P .. 'qv', qpath, 1) end
        local hk = P .. 'h:' .. host
        redis.call('RPUSH', P .. 'q:' .. host .. ':' .. depth, url)
        if redis.call('HINCRBY', hk, 'q', 1) == 1 then
          redis.call('SADD', P .. 'hosts', host)
        end
        local lohi = redis.call('HMGET', hk, 'lo', 'hi')
        local d = tonumber(depth)
        if not tonumber(lohi[1]) or d < tonumber(lohi[1]) then redis.call('HSET', hk, 'lo', d) end
        if not tonumber(lohi[2]) or d > tonumber(lohi[2]) then redis.call('HSET', hk, 'hi', d) end
        touched[host] = true
        added = added + 1
      end
    end
  end
  if added > 0 then redis.call('HINCRBY', P .. 'stats', 'queued', added) end
  for host in pairs(touched) do make_ready(host) end
  seen_save()
  return refused
end
"""
)

# ARGV: prefix, options JSON, slots, obey (0/1), delay ms, cooldown ms, max pages, max bytes,
# max time ms, dedupe load. -> {1, options} for the creator, {0, stored options} otherwise.
_CREATE = r"""
if redis.call('SET', P .. 'opts', ARGV[2], 'NX') then
  local now = now_ms()
  local max_time = tonumber(ARGV[9])
  redis.call('HSET', P .. 'meta', 'started', now, 'slots', ARGV[3], 'obey', ARGV[4],
    'delay', ARGV[5], 'cooldown', ARGV[6], 'max_pages', ARGV[7], 'max_bytes', ARGV[8],
    'deadline', max_time > 0 and now + max_time or 0, 'load', ARGV[10], 'seeded', 0)
  return {1, ARGV[2]}
end
return {0, redis.call('GET', P .. 'opts')}
"""

# ARGV: prefix, worker, ms. -> 1 when this worker is to seed the crawl now.
_BEGIN_SEEDING = r"""
if M[8] == '1' then return 0 end
if redis.call('SET', P .. 'seeding', ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return 0
"""

# ARGV: prefix, worker.
_END_SEEDING = r"""
redis.call('HSET', P .. 'meta', 'seeded', 1)
if redis.call('GET', P .. 'seeding') == ARGV[2] then redis.call('DEL', P .. 'seeding') end
return 1
"""

# ARGV: prefix, max query variants, then the URLs (see push_all). -> refused pairs.
_PUSH = r"""
return push_all(3, tonumber(ARGV[2]))
"""

# ARGV: prefix, worker, lease ms.
# -> {'url', url, depth, token, host, breaker state, breaker failures, queued, reaped, delay ms}
#  | {'wait', ms until a host may start (-1: none), ms until a lease expires (-1), queued, reaped}
#  | {'stop', reason} | {'done'} | {'seed'} (this worker is to seed: the seeder went away)
_CLAIM = r"""
local worker, lease = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local reaped = 0
for _, url in ipairs(redis.call('ZRANGEBYSCORE', P .. 'lease', '-inf', now, 'LIMIT', 0, 50)) do
  local info = redis.call('HGET', P .. 'holder', url)
  redis.call('ZREM', P .. 'lease', url)
  redis.call('HDEL', P .. 'holder', url)
  if info then
    local _, token, depth, host = string.match(info, '^(.-)\t(.-)\t(.-)\t(.*)$')
    requeue(url, host, depth)
    make_ready(host)
    redis.call('HSET', P .. 'reaped', url, token)
    reaped = reaped + 1
  end
end
local st = redis.call('HMGET', P .. 'stats', 'dispatched', 'bytes', 'queued')
if MAX_PAGES > 0 and (tonumber(st[1]) or 0) >= MAX_PAGES then return {'stop', 'max_pages'} end
if MAX_BYTES > 0 and (tonumber(st[2]) or 0) >= MAX_BYTES then return {'stop', 'max_bytes'} end
if DEADLINE > 0 and now >= DEADLINE then return {'stop', 'max_time'} end
for _, host in ipairs(redis.call('ZRANGEBYSCORE', P .. 'ready', '-inf', now, 'LIMIT', 0, 20)) do
  local hk = P .. 'h:' .. host
  local h = redis.call('HMGET', hk, 'q', 'f', 'r', 'lo', 'hi', 'delay')
  local q, f = tonumber(h[1]) or 0, tonumber(h[2]) or 0
  local open = false
  local b = redis.call('HMGET', P .. 'brk:' .. host, 'state', 'opened', 'failures')
  if q == 0 or f >= SLOTS or (OBEY == 1 and h[3] ~= '1' and f > 0) then
    redis.call('ZREM', P .. 'ready', host)
    open = true
  elseif b[1] == 'open' then
    local at = (tonumber(b[2]) or 0) + COOLDOWN
    if now < at then
      redis.call('ZADD', P .. 'ready', at, host)
      open = true
    end
  elseif b[1] == 'half_open' then
    if redis.call('ZCOUNT', P .. 'brk:' .. host .. ':trials', '(' .. now, '+inf') > 0 then
      redis.call('ZADD', P .. 'ready', now + 100, host)
      open = true
    end
  end
  if not open then
    local lo, hi = tonumber(h[4]) or 0, tonumber(h[5]) or 0
    local url, d
    while q > 0 do
      d, url = lo, nil
      while d <= hi do
        url = redis.call('LPOP', P .. 'q:' .. host .. ':' .. d)
        if url then break end
        d = d + 1
      end
      lo = d
      if not url then break end
      q = q - 1
      redis.call('HINCRBY', hk, 'q', -1)
      redis.call('HINCRBY', P .. 'stats', 'queued', -1)
      if redis.call('SREM', P .. 'late', url) == 0 then break end
      url = nil  -- acknowledged after its lease expired: done already
    end
    redis.call('HSET', hk, 'lo', lo)
    if url then
      local token = redis.call('HINCRBY', P .. 'stats', 'tokens', 1)
      local delay = tonumber(h[6]) or DELAY
      redis.call('ZADD', P .. 'lease', now + lease, url)
      redis.call('HSET', P .. 'holder', url, worker .. '\t' .. token .. '\t' .. d .. '\t' .. host)
      redis.call('HDEL', P .. 'reaped', url)
      f = redis.call('HINCRBY', hk, 'f', 1)
      redis.call('HSET', hk, 'next', now + delay)
      redis.call('HINCRBY', P .. 'stats', 'leased', 1)
      redis.call('HINCRBY', P .. 'stats', 'dispatched', 1)
      if q == 0 or f >= SLOTS or (OBEY == 1 and h[3] ~= '1') then
        redis.call('ZREM', P .. 'ready', host)
      else
        redis.call('ZADD', P .. 'ready', now + delay, host)
      end
      local queued = tonumber(redis.call('HGET', P .. 'stats', 'queued')) or 0
      return {'url', url, d, token, host, b[1] or 'closed', tonumber(b[3]) or 0, queued, reaped,
        delay}
    end
    -- nothing left to take here (its queue ran dry, or held only late-acknowledged URLs)
    if q > 0 then redis.call('HINCRBY', P .. 'stats', 'queued', -q) end
    redis.call('HSET', hk, 'q', 0)
    redis.call('ZREM', P .. 'ready', host)
  end
end
local queued = tonumber(redis.call('HGET', P .. 'stats', 'queued')) or 0
local leased = redis.call('ZCARD', P .. 'lease')
local seeding = redis.call('EXISTS', P .. 'seeding') == 1
if M[8] ~= '1' and not seeding then
  if redis.call('SET', P .. 'seeding', worker, 'NX', 'PX', lease) then return {'seed'} end
end
if queued <= 0 and leased == 0 and M[8] == '1' then return {'done'} end
local wake, expiry = -1, -1
local first = redis.call('ZRANGE', P .. 'ready', 0, 0, 'WITHSCORES')
if first[2] then wake = math.max(0, tonumber(first[2]) - now) end
local soonest = redis.call('ZRANGE', P .. 'lease', 0, 0, 'WITHSCORES')
if soonest[2] then expiry = math.max(0, tonumber(soonest[2]) - now) end
return {'wait', wake, expiry, queued, reaped}
"""

# ARGV: prefix, worker, url, token, host, outcome (done, failed, skipped), bytes,
# max query variants, then the page's links (see push_all).
# -> {1 when this acknowledgement counted (0: a repeat, or someone else holds it), refused...}
_ACK = r"""
local url, token, host, outcome = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local info = redis.call('HGET', P .. 'holder', url)
local counted = 0
if info then
  local _, held = string.match(info, '^(.-)\t(.-)\t')
  if held == token then
    redis.call('ZREM', P .. 'lease', url)
    redis.call('HDEL', P .. 'holder', url)
    redis.call('HINCRBY', P .. 'h:' .. host, 'f', -1)
    redis.call('HINCRBY', P .. 'stats', 'leased', -1)
    counted = 1
  end
elseif redis.call('HGET', P .. 'reaped', url) == token then
  -- its lease had expired and it is queued again: that copy is dropped when taken
  redis.call('HDEL', P .. 'reaped', url)
  redis.call('SADD', P .. 'late', url)
  counted = 1
end
if counted == 1 then
  local field = ({done = 'd', failed = 'e', skipped = 'k'})[outcome]
  redis.call('HINCRBY', P .. 'h:' .. host, field, 1)
  redis.call('HINCRBY', P .. 'stats', outcome, 1)
  redis.call('HINCRBY', P .. 'stats', 'bytes', ARGV[7])
  if outcome == 'skipped' then
    redis.call('HINCRBY', P .. 'stats', 'dispatched', -1)
  else
    redis.call('HINCRBY', P .. 'w:' .. ARGV[2], 'pages', 1)
  end
  redis.call('HSET', P .. 'stats', 'last', now_ms())
end
local refused = push_all(9, tonumber(ARGV[8]))
make_ready(host)
table.insert(refused, 1, counted)
return refused
"""

# ARGV: prefix, worker, url, token, host, depth. -> 1 when put back.
_RELEASE = r"""
local url, token, host, depth = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local info = redis.call('HGET', P .. 'holder', url)
if not info then return 0 end
local _, held = string.match(info, '^(.-)\t(.-)\t')
if held ~= token then return 0 end
redis.call('ZREM', P .. 'lease', url)
redis.call('HDEL', P .. 'holder', url)
requeue(url, host, depth)
redis.call('HINCRBY', P .. 'stats', 'dispatched', -1)
make_ready(host)
return 1
"""

# ARGV: prefix, worker, lease ms, worker info (JSON), then (url, token) pairs it holds.
# -> the URLs whose lease it no longer holds (they expired and went back to the queue).
_RENEW = r"""
local worker, lease = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
redis.call('ZADD', P .. 'workers', now, worker)
redis.call('HSET', P .. 'w:' .. worker, 'hb', now, 'info', ARGV[4])
redis.call('HSETNX', P .. 'w:' .. worker, 'joined', now)
if redis.call('GET', P .. 'seeding') == worker then
  redis.call('PEXPIRE', P .. 'seeding', lease)
end
local lost = {}
for i = 5, #ARGV - 1, 2 do
  local url, token = ARGV[i], ARGV[i + 1]
  local info = redis.call('HGET', P .. 'holder', url)
  local held = info and select(2, string.match(info, '^(.-)\t(.-)\t'))
  if held == token then
    redis.call('ZADD', P .. 'lease', 'XX', now + lease, url)
  else
    lost[#lost + 1] = url
  end
end
return lost
"""

# ARGV: prefix, worker.
_LEAVE = r"""
redis.call('ZREM', P .. 'workers', ARGV[2])
redis.call('DEL', P .. 'w:' .. ARGV[2])
if redis.call('GET', P .. 'seeding') == ARGV[2] then redis.call('DEL', P .. 'seeding') end
return 1
"""

# ARGV: prefix, host, Crawl-delay ms (0: none). robots.txt of host is loaded.
_ROBOTS_LOADED = r"""
local host, delay = ARGV[2], tonumber(ARGV[3])
local hk = P .. 'h:' .. host
local h = redis.call('HMGET', hk, 'delay', 'next', 'q', 'f')
local next_start = tonumber(h[2]) or 0
if delay > (tonumber(h[1]) or DELAY) then
  next_start = math.max(next_start, now_ms() + delay)
  redis.call('HSET', hk, 'delay', delay, 'next', next_start)
end
redis.call('HSET', hk, 'r', 1)
if (tonumber(h[3]) or 0) > 0 and (tonumber(h[4]) or 0) < SLOTS then
  redis.call('ZADD', P .. 'ready', next_start, host)
end
return 1
"""

# ARGV: prefix, host. A request to host starts now: its delay runs from here (the claim that
# allowed it may have come a while before, in a worker that had robots.txt to load first).
_STARTED = r"""
local host = ARGV[2]
local hk = P .. 'h:' .. host
local next_start = now_ms() + (tonumber(redis.call('HGET', hk, 'delay')) or DELAY)
redis.call('HSET', hk, 'next', next_start)
redis.call('ZADD', P .. 'ready', 'XX', 'GT', next_start, host)
return 1
"""

# ARGV: prefix, target hash, target, source. -> 1 when the target is queued or fetched under
# its own name (0 when new, or claimed by an earlier fetch of source).
_REDIRECT_SEEN = r"""
if not seen_has(ARGV[2]) then return 0 end
if redis.call('HGET', P .. 'redir', ARGV[3]) == ARGV[4] then return 0 end
return 1
"""

# ARGV: prefix, target hash, target, source. -> 1 when claimed for source (now or before).
_CLAIM_REDIRECT = r"""
if seen_add(ARGV[2]) then
  redis.call('HSET', P .. 'redir', ARGV[3], ARGV[4])
  seen_save()
  return 1
end
if redis.call('HGET', P .. 'redir', ARGV[3]) == ARGV[4] then return 1 end
return 0
"""

SCRIPTS = {
    name: _COMMON + body
    for name, body in {
        "create": _CREATE,
        "begin_seeding": _BEGIN_SEEDING,
        "end_seeding": _END_SEEDING,
        "push": _PUSH,
        "claim": _CLAIM,
        "ack": _ACK,
        "release": _RELEASE,
        "renew": _RENEW,
        "leave": _LEAVE,
        "robots_loaded": _ROBOTS_LOADED,
        "started": _STARTED,
        "redirect_seen": _REDIRECT_SEEN,
        "claim_redirect": _CLAIM_REDIRECT,
    }.items()
}
