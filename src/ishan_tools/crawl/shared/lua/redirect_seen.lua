-- ARGV: prefix, target hash, target, source. -> 1 when the target is queued or fetched under
-- its own name (0 when new, or claimed by an earlier fetch of source).
if not seen_has(ARGV[2]) then return 0 end
if redis.call('HGET', P .. 'redir', ARGV[3]) == ARGV[4] then return 0 end
return 1
