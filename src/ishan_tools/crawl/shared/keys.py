"""Naming a shared crawl in Redis, hashing its URLs, and reaching the server.

Clients (from `ishan_tools.stores.client`) do not retry by themselves; a worker's calls go
through `frontier_retry` (a `stores.retry.RedisRetry`), which waits for a server that is away
(a restart, a blip) up to --frontier-timeout.

Every key of crawl NAME starts with `ishan:crawl:{NAME}:` (the braces are a Redis Cluster
hash tag: one crawl, one slot); `scripts` lists the keys. URL hashes are the first 8
bytes of BLAKE2b as a signed 64-bit integer: the same in every process and on every machine,
unlike Python's salted `hash()`.
"""

from __future__ import annotations

import hashlib

from ishan_tools.crawl.events import Emit
from ishan_tools.errors import CrawlError
from ishan_tools.stores.retry import RedisRetry

__all__ = [
    "KEY_ROOT",
    "CrawlKeys",
    "frontier_retry",
    "stable_hash",
    "unreachable",
]

KEY_ROOT = "ishan:crawl:"


def stable_hash(text: str) -> int:
    """A signed 64-bit hash of `text` that every process agrees on."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class CrawlKeys:
    """The key names of one crawl; scripts build the rest from `prefix`."""

    def __init__(self, crawl_id: str) -> None:
        self.crawl_id = crawl_id
        self.prefix = prefix = f"{KEY_ROOT}{{{crawl_id}}}:"
        self.opts = prefix + "opts"
        self.meta = prefix + "meta"
        self.stats = prefix + "stats"
        self.hosts = prefix + "hosts"
        self.lease = prefix + "lease"
        self.robots = prefix + "robots"
        self.sites = prefix + "sites"
        self.workers = prefix + "workers"

    def host(self, host: str) -> str:
        return f"{self.prefix}h:{host}"

    def worker(self, worker: str) -> str:
        return f"{self.prefix}w:{worker}"

    def breaker(self, host: str) -> str:
        return f"{self.prefix}brk:{host}"

    def robots_lock(self, host: str) -> str:
        return f"{self.prefix}robots-lock:{host}"

    def pattern(self) -> str:
        """A SCAN pattern for every key of this crawl (crawl ids hold no glob characters)."""
        return self.prefix + "*"

    @staticmethod
    def crawl_of(opts_key: str) -> str | None:
        """The crawl id in a `...{NAME}:opts` key name."""
        if opts_key.startswith(KEY_ROOT + "{") and opts_key.endswith("}:opts"):
            return opts_key[len(KEY_ROOT) + 1 : -len("}:opts")]
        return None


def unreachable(url: str, exc: BaseException, hint: str) -> CrawlError:
    """The one-line error for a Redis server that does not answer."""
    reason = str(exc).strip().rstrip(".") or type(exc).__name__
    return CrawlError(f"cannot reach the frontier {url} ({reason}): {hint}")


def frontier_retry(url: str, timeout: float, emit: Emit) -> RedisRetry:
    """The retry a worker's calls go through: events `frontier_lost` and `frontier_back` to
    `emit`, and a CrawlError once the frontier at `url` stayed away `timeout` seconds."""

    def give_up(exc: BaseException, waited: float) -> CrawlError:
        return unreachable(
            url,
            exc,
            f"no answer for {waited:.0f} s (--frontier-timeout); what this worker "
            "held goes back to the queue: start Redis and run it again",
        )

    return RedisRetry(
        timeout,
        give_up=give_up,
        on_lost=lambda exc: emit("frontier_lost", frontier=url, error=str(exc) or repr(exc)),
        on_back=lambda after: emit("frontier_back", frontier=url, after_s=round(after, 3)),
    )
