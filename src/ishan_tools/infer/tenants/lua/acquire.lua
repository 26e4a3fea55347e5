-- ARGV: prefix, coordinator, tenant, max sessions, tokens per minute ('' for no limit).
-- -> {'ok' | 'tokens' | 'sessions', tokens used, milliseconds to wait}: the tenant's
-- window is checked first, then its sessions on live coordinators; 'ok' took one.
local tenant, most, per_minute = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
if per_minute then
  local now = now_s()
  local used, buckets = window(tenant, now, true)
  if used >= per_minute then
    local left = used
    for _, bucket in ipairs(buckets) do
      left = left - bucket[2]
      if left < per_minute then  -- the sum falls below the limit when this bucket leaves
        return {'tokens', used, math.ceil(math.max(0, bucket[1] + WINDOW - now) * 1000)}
      end
    end
    return {'tokens', used, 0}
  end
end
if most and live_sessions(tenant, true) >= most then
  return {'sessions', 0, 0}
end
redis.call('HINCRBY', P .. 'sessions:' .. tenant, ME, 1)
return {'ok', 0, 0}
