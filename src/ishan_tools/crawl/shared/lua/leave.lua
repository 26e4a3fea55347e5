-- ARGV: prefix, worker.
redis.call('ZREM', P .. 'workers', ARGV[2])
redis.call('DEL', P .. 'w:' .. ARGV[2])
if redis.call('GET', P .. 'seeding') == ARGV[2] then redis.call('DEL', P .. 'seeding') end
return 1
