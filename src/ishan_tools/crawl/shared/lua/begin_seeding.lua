-- ARGV: prefix, worker, ms. -> 1 when this worker is to seed the crawl now.
if M[8] == '1' then return 0 end
if redis.call('SET', P .. 'seeding', ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return 0
