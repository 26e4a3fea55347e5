-- ARGV: prefix, target hash, target, source. -> 1 when claimed for source (now or before).
if seen_add(ARGV[2]) then
  redis.call('HSET', P .. 'redir', ARGV[3], ARGV[4])
  seen_save()
  return 1
end
if redis.call('HGET', P .. 'redir', ARGV[3]) == ARGV[4] then return 1 end
return 0
