-- ARGV: prefix, coordinator, tenant, tokens. Adds them to this second's bucket; the key
-- expires a window after its last charge, and old buckets go once they are many.
local key = P .. 'tokens:' .. ARGV[3]
local now = now_s()
redis.call('HINCRBY', key, math.floor(now), ARGV[4])
redis.call('EXPIRE', key, WINDOW + 1)
if redis.call('HLEN', key) > 2 * WINDOW then
  window(ARGV[3], now, true)
end
return 1
