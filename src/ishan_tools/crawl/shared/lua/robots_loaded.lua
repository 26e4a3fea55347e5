-- ARGV: prefix, host, Crawl-delay ms (0: none). robots.txt of host is loaded.
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
