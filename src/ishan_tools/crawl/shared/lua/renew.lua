-- ARGV: prefix, worker, lease ms, worker info (JSON), then (url, token) pairs it holds.
-- -> the URLs whose lease it no longer holds (they expired and went back to the queue).
local worker, lease = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
redis.call('ZADD', P .. 'workers', now, worker)
redis.call('HSET', P .. 'w:' .. worker, 'hb', now, 'info', ARGV[4])
redis.call('HSETNX', P .. 'w:' .. worker, 'joined', now)
if redis.call('GET', P .. 'seeding') == worker then
  redis.call('PEXPIRE', P .. 'seeding', lease)
end
local lost = {}
for i = 5, #ARGV - 1, 2 do
  local url, token = ARGV[i], ARGV[i + 1]
  local info = redis.call('HGET', P .. 'holder', url)
  local held = info and select(2, string.match(info, '^(.-)\t(.-)\t'))
  if held == token then
    redis.call('ZADD', P .. 'lease', 'XX', now + lease, url)
  else
    lost[#lost + 1] = url
  end
end
return lost
