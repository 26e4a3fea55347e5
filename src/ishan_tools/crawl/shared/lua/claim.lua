-- ARGV: prefix, worker, lease ms.
-- -> {'url', url, depth, token, host, breaker state, breaker failures, queued, reaped, delay ms}
--  | {'wait', ms until a host may start (-1: none), ms until a lease expires (-1), queued, reaped}
--  | {'stop', reason} | {'done'} | {'seed'} (this worker is to seed: the seeder went away)
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
