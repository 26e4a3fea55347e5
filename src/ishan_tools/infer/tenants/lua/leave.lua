-- ARGV: prefix, coordinator, then the tenants it took sessions for: its lease and its
-- sessions go at once (a clean shutdown; a killed coordinator's lease expires instead).
redis.call('DEL', P .. 'lease:' .. ME)
for i = 3, #ARGV do
  redis.call('HDEL', P .. 'sessions:' .. ARGV[i], ME)
end
return 1
