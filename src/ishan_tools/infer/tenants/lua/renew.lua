-- ARGV: prefix, coordinator, lease ms. -> 1 when its lease was still alive, 0 when it had
-- expired (other coordinators may have deleted its sessions since: it joins again).
local key = P .. 'lease:' .. ME
local alive = redis.call('EXISTS', key)
redis.call('SET', key, '1', 'PX', ARGV[3])
return alive
