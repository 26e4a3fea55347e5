-- ARGV: prefix, worker, url, token, host, outcome (done, failed, skipped), bytes,
-- max query variants, ms to remember a counted acknowledgement, then the page's links (see
-- push_all).
-- -> {1 when this acknowledgement counted, 2 when it counted late (its lease had expired and
-- nobody took the URL since), 3 when it had counted already (a retry whose first reply was
-- lost), 0 when refused (someone else holds or acknowledged it: fenced), refused links...}
local url, token, host, outcome = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local info = redis.call('HGET', P .. 'holder', url)
local counted = 0
if info then
  local _, held = string.match(info, '^(.-)\t(.-)\t')
  if held == token then
    redis.call('ZREM', P .. 'lease', url)
    redis.call('HDEL', P .. 'holder', url)
    redis.call('HINCRBY', P .. 'h:' .. host, 'f', -1)
    redis.call('HINCRBY', P .. 'stats', 'leased', -1)
    counted = 1
  end
elseif redis.call('HGET', P .. 'reaped', url) == token then
  -- its lease had expired and it is queued again: that copy is dropped when taken
  redis.call('HDEL', P .. 'reaped', url)
  redis.call('SADD', P .. 'late', url)
  counted = 2
elseif redis.call('GET', P .. 'acked:' .. url) == token then
  counted = 3
end
if counted == 1 or counted == 2 then
  redis.call('SET', P .. 'acked:' .. url, token, 'PX', ARGV[9])
  local field = ({done = 'd', failed = 'e', skipped = 'k'})[outcome]
  redis.call('HINCRBY', P .. 'h:' .. host, field, 1)
  redis.call('HINCRBY', P .. 'stats', outcome, 1)
  redis.call('HINCRBY', P .. 'stats', 'bytes', ARGV[7])
  if outcome == 'skipped' then
    redis.call('HINCRBY', P .. 'stats', 'dispatched', -1)
  else
    redis.call('HINCRBY', P .. 'w:' .. ARGV[2], 'pages', 1)
  end
  redis.call('HSET', P .. 'stats', 'last', now_ms())
end
local refused = push_all(10, tonumber(ARGV[8]))
make_ready(host)
table.insert(refused, 1, counted)
return refused
