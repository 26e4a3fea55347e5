"""A shared crawl: one crawl in Redis that any number of worker processes take part in.

`frontier` (the `RedisFrontier` the engine uses with --frontier redis://...), `scripts` (its Lua
scripts), `dedupe` (the set of URLs seen), `keys` (the key names, hashing, clients, retries)
and `admin` (`ishan crawl status` and `forget`). The breaker's Redis store, which the frontier
uses per host, lives below the systems, in `ishan_tools.stores`.
"""
