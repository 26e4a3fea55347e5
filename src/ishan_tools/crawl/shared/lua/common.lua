-- The functions several scripts share, after prelude.lua and the dedupe set (seen.lua).
-- A host goes (back) into `ready` when it has queued URLs and a free slot; while its
-- robots.txt is not loaded yet, only when nothing of it is in flight.
local function make_ready(host)
  local h = redis.call('HMGET', P .. 'h:' .. host, 'q', 'f', 'next', 'r')
  local q, f = tonumber(h[1]) or 0, tonumber(h[2]) or 0
  if q > 0 and f < SLOTS and (OBEY == 0 or h[4] == '1' or f == 0) then
    redis.call('ZADD', P .. 'ready', 'NX', tonumber(h[3]) or 0, host)
  end
end

-- Put a URL back at the head of its depth in its host's queue (a lease that ended unfetched).
local function requeue(url, host, depth)
  local hk = P .. 'h:' .. host
  redis.call('LPUSH', P .. 'q:' .. host .. ':' .. depth, url)
  redis.call('HINCRBY', hk, 'q', 1)
  redis.call('HINCRBY', hk, 'f', -1)
  local lo = tonumber(redis.call('HGET', hk, 'lo'))
  if not lo or tonumber(depth) < lo then redis.call('HSET', hk, 'lo', depth) end
  redis.call('HINCRBY', P .. 'stats', 'queued', 1)
  redis.call('HINCRBY', P .. 'stats', 'leased', -1)
end

-- Queue new URLs: ARGV[first..], one each, 'depth TAB hash TAB query path hash or "" TAB url'.
-- Returns the refused ones as {index, 'query_trap'} pairs (duplicates are silent).
local function push_all(first, maxqv)
  local refused, touched, added = {}, {}, 0
  for i = first, #ARGV do
    local depth, m, qpath, url = string.match(ARGV[i], '^(%d+)\t([^\t]*)\t([^\t]*)\t(.*)$')
    local host = string.match(url, '^[^/]*//([^/]*)')
    if not seen_has(m) then
      if qpath ~= '' and (tonumber(redis.call('HGET', P .. 'qv', qpath)) or 0) >= maxqv then
        refused[#refused + 1] = i - first + 1
        refused[#refused + 1] = 'query_trap'
      else
        seen_add(m)
        if qpath ~= '' then redis.call('HINCRBY', P .. 'qv', qpath, 1) end
        local hk = P .. 'h:' .. host
        redis.call('RPUSH', P .. 'q:' .. host .. ':' .. depth, url)
        if redis.call('HINCRBY', hk, 'q', 1) == 1 then
          redis.call('SADD', P .. 'hosts', host)
        end
        local lohi = redis.call('HMGET', hk, 'lo', 'hi')
        local d = tonumber(depth)
        if not tonumber(lohi[1]) or d < tonumber(lohi[1]) then redis.call('HSET', hk, 'lo', d) end
        if not tonumber(lohi[2]) or d > tonumber(lohi[2]) then redis.call('HSET', hk, 'hi', d) end
        touched[host] = true
        added = added + 1
      end
    end
  end
  if added > 0 then redis.call('HINCRBY', P .. 'stats', 'queued', added) end
  for host in pairs(touched) do make_ready(host) end
  seen_save()
  return refused
end
