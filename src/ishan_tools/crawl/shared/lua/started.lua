-- ARGV: prefix, host. A request to host starts now: its delay runs from here (the claim that
-- allowed it may have come a while before, in a worker that had robots.txt to load first).
local host = ARGV[2]
local hk = P .. 'h:' .. host
local next_start = now_ms() + (tonumber(redis.call('HGET', hk, 'delay')) or DELAY)
redis.call('HSET', hk, 'next', next_start)
redis.call('ZADD', P .. 'ready', 'XX', 'GT', next_start, host)
return 1
