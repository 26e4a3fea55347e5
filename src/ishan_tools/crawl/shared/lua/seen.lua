-- The dedupe set (see dedupe.py), after prelude.lua (P, M) and low_bits.lua (low_bits).
local SEEN_L, SEEN_S, SEEN_N = tonumber(M[9]) or 0, tonumber(M[10]) or 0, tonumber(M[11]) or 0
local SEEN_LOAD, SEEN_DIRTY = tonumber(M[12]) or 192, false
local function seen_key(m)
  local b = low_bits(m, SEEN_L)
  if b < SEEN_S then b = low_bits(m, SEEN_L + 1) end
  return P .. 'seen:' .. b
end
local function seen_has(m)
  return redis.call('SISMEMBER', seen_key(m), m) == 1
end
local function seen_add(m)
  if redis.call('SADD', seen_key(m), m) == 0 then return false end
  SEEN_N, SEEN_DIRTY = SEEN_N + 1, true
  if SEEN_N > SEEN_LOAD * (2 ^ SEEN_L + SEEN_S) and SEEN_L < 25 then
    local half = 2 ^ SEEN_L
    local from, to = P .. 'seen:' .. SEEN_S, P .. 'seen:' .. (SEEN_S + half)
    for _, x in ipairs(redis.call('SMEMBERS', from)) do
      if low_bits(x, SEEN_L + 1) ~= SEEN_S then redis.call('SMOVE', from, to, x) end
    end
    SEEN_S = SEEN_S + 1
    if SEEN_S == half then SEEN_L, SEEN_S = SEEN_L + 1, 0 end
  end
  return true
end
local function seen_save()
  if SEEN_DIRTY then
    redis.call('HSET', P .. 'meta', 'L', SEEN_L, 's', SEEN_S, 'n', SEEN_N)
  end
end
