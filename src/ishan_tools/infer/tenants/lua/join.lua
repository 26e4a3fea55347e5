-- ARGV: prefix, coordinator, lease ms, then (tenant, sessions) pairs: takes the lease and
-- writes the sessions this coordinator holds (its truth, after an outage or a lapsed lease).
redis.call('SET', P .. 'lease:' .. ME, '1', 'PX', ARGV[3])
for i = 4, #ARGV - 1, 2 do
  local key = P .. 'sessions:' .. ARGV[i]
  if tonumber(ARGV[i + 1]) > 0 then
    redis.call('HSET', key, ME, ARGV[i + 1])
  else
    redis.call('HDEL', key, ME)
  end
end
return 1
