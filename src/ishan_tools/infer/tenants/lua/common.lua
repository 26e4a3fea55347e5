-- Every script starts here (after `local WINDOW = 60`, quotas.WINDOW): P, the key prefix
-- (ARGV[1]); ME, this coordinator (ARGV[2]); now_s(), Redis' clock; live_sessions() and
-- window(), a tenant's sessions and tokens as every coordinator sees them.
redis.replicate_commands()
local P, ME = ARGV[1], ARGV[2]

local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- The tenant's sessions on coordinators whose lease is alive (ME always is); with `prune`,
-- the fields of the others (killed, or gone without a word) are deleted.
local function live_sessions(tenant, prune)
  local key = P .. 'sessions:' .. tenant
  local fields = redis.call('HGETALL', key)
  local total = 0
  for i = 1, #fields, 2 do
    local coordinator = fields[i]
    if coordinator == ME or redis.call('EXISTS', P .. 'lease:' .. coordinator) == 1 then
      total = total + tonumber(fields[i + 1])
    elseif prune then
      redis.call('HDEL', key, coordinator)
    end
  end
  return total
end

-- The tenant's tokens over the last WINDOW seconds: their sum, and the buckets {second,
-- tokens} oldest first; with `prune`, buckets that left the window are deleted.
local function window(tenant, now, prune)
  local key = P .. 'tokens:' .. tenant
  local fields = redis.call('HGETALL', key)
  local oldest = math.floor(now) - WINDOW
  local buckets, total = {}, 0
  for i = 1, #fields, 2 do
    local second, tokens = tonumber(fields[i]), tonumber(fields[i + 1])
    if second <= oldest then
      if prune then redis.call('HDEL', key, fields[i]) end
    else
      buckets[#buckets + 1] = {second, tokens}
      total = total + tokens
    end
  end
  table.sort(buckets, function(a, b) return a[1] < b[1] end)
  return total, buckets
end
