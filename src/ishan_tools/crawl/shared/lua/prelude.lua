-- Every script starts here: P, the crawl's key prefix (ARGV[1]); now_ms(); M, the meta
-- fields the scripts apply. Then comes the dedupe set (seen.lua), then common.lua.
redis.replicate_commands()
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local M = redis.call('HMGET', P .. 'meta', 'slots', 'obey', 'delay', 'cooldown',
  'max_pages', 'max_bytes', 'deadline', 'seeded', 'L', 's', 'n', 'load')
local SLOTS, OBEY, DELAY, COOLDOWN = tonumber(M[1]) or 8, tonumber(M[2]) or 1,
  tonumber(M[3]) or 0, tonumber(M[4]) or 30000
local MAX_PAGES, MAX_BYTES, DEADLINE = tonumber(M[5]) or 0, tonumber(M[6]) or 0,
  tonumber(M[7]) or 0
