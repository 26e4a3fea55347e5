"""The shared crawl's dedupe set, in Lua: the functions every frontier script can call.

A URL is known by its stable 64-bit hash (`keys.stable_hash`). The hashes live in
buckets `seen:N`, grown by linear hashing: while there are 2^L + s buckets, a hash lives in
bucket `hash mod 2^L`, or `hash mod 2^(L+1)` when that is below s (bucket s was split
already); one bucket more is split each time the set passes `load` hashes per bucket. Each
bucket stays below Redis' set-max-intset-entries, so it is a compact intset: about 10 bytes a
URL. L, s, n (hashes in all) and load are fields of the crawl's `meta` hash.

The Lua is in `lua/low_bits.lua` and `lua/seen.lua` (package data). `SEEN` expects what
`scripts`' prelude defines: `P` (the key prefix) and `M` (the `meta` fields it read;
M[9..12] are L, s, n and load).
"""

from __future__ import annotations

from ishan_tools.stores.client import lua_source

__all__ = ["INTSET_LOAD_SHARE", "LOW_BITS", "SEEN"]

# Dedupe-set load: members per bucket before one more bucket is split. Buckets stay below
# Redis' set-max-intset-entries (512 by default) so that each one is a compact intset; the
# creator scales it to the server's setting.
INTSET_LOAD_SHARE = 0.375

_HERE = __name__.rpartition(".")[0]
LOW_BITS = lua_source(_HERE, "low_bits")
SEEN = LOW_BITS + lua_source(_HERE, "seen")
