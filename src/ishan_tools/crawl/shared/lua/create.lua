-- ARGV: prefix, options JSON, slots, obey (0/1), delay ms, cooldown ms, max pages, max bytes,
-- max time ms, dedupe load. -> {1, options} for the creator, {0, stored options} otherwise.
if redis.call('SET', P .. 'opts', ARGV[2], 'NX') then
  local now = now_ms()
  local max_time = tonumber(ARGV[9])
  redis.call('HSET', P .. 'meta', 'started', now, 'slots', ARGV[3], 'obey', ARGV[4],
    'delay', ARGV[5], 'cooldown', ARGV[6], 'max_pages', ARGV[7], 'max_bytes', ARGV[8],
    'deadline', max_time > 0 and now + max_time or 0, 'load', ARGV[10], 'seeded', 0)
  return {1, ARGV[2]}
end
return {0, redis.call('GET', P .. 'opts')}
