"""The Lua scripts of the shared frontier: every step two workers could race on, atomically.

The Lua lives in `lua/` (package data): each script NAME.lua (its ARGV and reply at its top)
runs after `prelude.lua`, the dedupe set (`low_bits.lua`, `seen.lua`) and `common.lua`.

Each script gets the crawl's key prefix as ARGV[1] and builds its keys from it (one Redis
server; the `{crawl-id}` hash tag keeps a crawl's keys in one slot). Times are Redis' own
(`TIME`, in milliseconds), so workers on machines with different clocks agree.

Keys under the prefix (see `keys.CrawlKeys`):
    opts            the crawl's options (JSON), set once by the first worker
    meta            hash: started, deadline, seeded, the options the scripts apply
                    (slots, obey, delay, cooldown, max_pages, max_bytes) and the dedupe
                    set's shape (L, s, n, load)
    stats           hash: queued, leased, dispatched, done, failed, skipped, bytes, tokens,
                    last (time of the last acknowledgement)
    hosts           set of every host seen
    h:HOST          hash: q (queued), f (in flight), d/e/k (done/failed/skipped), lo and hi
                    (depths queued), next (earliest next start), delay, r (robots loaded)
    q:HOST:DEPTH    list of URLs, in arrival order: one host's queue is (depth, arrival)
    ready           zset HOST -> time it may start: hosts with queued URLs and a free slot
    lease           zset URL -> lease deadline; holder: hash URL -> worker, token, depth, host
    reaped, late    a lease that expired (URL -> its token), URLs acknowledged after that
    acked:URL       the token of its counted acknowledgement, for a while (a retry's repeat)
    seen:N          the dedupe set (dedupe.py): signed 64-bit URL hashes in intset
                    buckets, grown by linear hashing, so about 10 bytes a URL
    qv, redir       query variants per path hash; redirect targets -> the URL that claimed it
    robots, sites   robots.txt per host; start URL -> the host its site moved to
    workers, w:ID   zset worker -> last heartbeat; hash: joined, pages, what it reports
    seeding         the worker seeding the crawl (expires unless renewed)
    brk:HOST        the host's circuit breaker (ishan_tools.stores.breaker), read here by `claim`
"""

from __future__ import annotations

from ishan_tools.crawl.shared.dedupe import SEEN
from ishan_tools.stores.client import lua_source

__all__ = ["NAMES", "SCRIPTS"]

NAMES = (
    "create",
    "begin_seeding",
    "end_seeding",
    "push",
    "claim",
    "ack",
    "release",
    "renew",
    "leave",
    "robots_loaded",
    "started",
    "redirect_seen",
    "claim_redirect",
)
_HERE = __name__.rpartition(".")[0]
_COMMON = lua_source(_HERE, "prelude") + SEEN + lua_source(_HERE, "common")
SCRIPTS = {name: _COMMON + lua_source(_HERE, name) for name in NAMES}
