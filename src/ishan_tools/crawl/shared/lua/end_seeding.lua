-- ARGV: prefix, worker.
redis.call('HSET', P .. 'meta', 'seeded', 1)
if redis.call('GET', P .. 'seeding') == ARGV[2] then redis.call('DEL', P .. 'seeding') end
return 1
