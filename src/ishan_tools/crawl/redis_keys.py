"""Naming a shared crawl in Redis, hashing its URLs, and reaching the server.

Every key of crawl NAME starts with `ishan:crawl:{NAME}:` (the braces are a Redis Cluster
hash tag: one crawl, one slot); `redis_scripts` lists the keys. URL hashes are the first 8
bytes of BLAKE2b as a signed 64-bit integer: the same in every process and on every machine,
unlike Python's salted `hash()`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import redis
import redis.asyncio
from redis.backoff import NoBackoff

from ishan_tools.errors import CrawlError

__all__ = [
    "KEY_ROOT",
    "REDIS_DOWN",
    "CrawlKeys",
    "async_client",
    "stable_hash",
    "sync_client",
    "unreachable",
]

KEY_ROOT = "ishan:crawl:"
# What a lost or restarting server raises (BusyLoadingError, "LOADING", is a ConnectionError).
REDIS_DOWN: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ConnectionError,
    OSError,
)


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


def _options(socket_timeout: float) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "health_check_interval": 0,
    }


def async_client(url: str, socket_timeout: float, connections: int = 2) -> redis.asyncio.Redis:
    """An asyncio client that does not retry by itself (the frontier retries, with backoff)
    and holds at most `connections` connections: callers beyond them wait their turn, so a
    worker costs Redis a few client buffers, not one per task."""
    from redis.asyncio.retry import Retry

    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=connections,
        timeout=None,
        retry=Retry(NoBackoff(), 0),
        **_options(socket_timeout),
    )
    return redis.asyncio.Redis(connection_pool=pool)


def sync_client(url: str, socket_timeout: float = 5.0) -> redis.Redis:
    from redis.retry import Retry

    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **_options(socket_timeout))


def unreachable(url: str, exc: BaseException, hint: str) -> CrawlError:
    """The one-line error for a Redis server that does not answer."""
    reason = str(exc).strip().rstrip(".") or type(exc).__name__
    return CrawlError(f"cannot reach the frontier {url} ({reason}): {hint}")
