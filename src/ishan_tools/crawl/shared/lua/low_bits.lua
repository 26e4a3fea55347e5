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
