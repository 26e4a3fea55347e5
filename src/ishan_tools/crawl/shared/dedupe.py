"""The shared crawl's dedupe set, in Lua: the functions every frontier script can call.

A URL is known by its stable 64-bit hash (`keys.stable_hash`). The hashes live in
buckets `seen:N`, grown by linear hashing: while there are 2^L + s buckets, a hash lives in
bucket `hash mod 2^L`, or `hash mod 2^(L+1)` when that is below s (bucket s was split
already); one bucket more is split each time the set passes `load` hashes per bucket. Each
bucket stays below Redis' set-max-intset-entries, so it is a compact intset: about 10 bytes a
URL. L, s, n (hashes in all) and load are fields of the crawl's `meta` hash.

`SEEN` expects what `scripts`' prelude defines: `P` (the key prefix) and `M` (the
`meta` fields it read; M[9..12] are L, s, n and load).
"""

from __future__ import annotations

__all__ = ["INTSET_LOAD_SHARE", "LOW_BITS", "SEEN"]

# Dedupe-set load: members per bucket before one more bucket is split. Buckets stay below
# Redis' set-max-intset-entries (512 by default) so that each one is a compact intset; the
# creator scales it to the server's setting.
INTSET_LOAD_SHARE = 0.375

LOW_BITS = r"""
-- m mod 2^k (floor), m the decimal string of a signed 64-bit integer, k <= 26: exact in
-- doubles by splitting m into its last ten digits and the rest.
local function low_bits(m, k)
  if k == 0 then return 0 end
  local mod = 2 ^ k
  local neg = string.byte(m, 1) == 45
  local digits = neg and string.sub(m, 2) or m
  local n = #digits
  local r
  if n <= 15 then
    r = tonumber(digits) % mod
  else
    local hi = tonumber(string.sub(digits, 1, n - 10))
    local lo = tonumber(string.sub(digits, n - 9))
    r = ((hi % mod) * (10000000000 % mod) + lo) % mod
  end
  if neg and r ~= 0 then r = mod - r end
  return r
end
"""

SEEN = (
    r"""
local SEEN_L, SEEN_S, SEEN_N = tonumber(M[9]) or 0, tonumber(M[10]) or 0, tonumber(M[11]) or 0
local SEEN_LOAD, SEEN_DIRTY = tonumber(M[12]) or 192, false
"""
    + LOW_BITS
    + r"""
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
"""
)
