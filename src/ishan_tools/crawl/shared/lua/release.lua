-- ARGV: prefix, worker, url, token, host, depth. -> 1 when put back.
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
