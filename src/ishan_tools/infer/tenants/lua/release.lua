-- ARGV: prefix, coordinator, tenant. Gives back one of its sessions (never below none).
local key = P .. 'sessions:' .. ARGV[3]
if redis.call('HINCRBY', key, ME, -1) <= 0 then
  redis.call('HDEL', key, ME)
end
return 1
