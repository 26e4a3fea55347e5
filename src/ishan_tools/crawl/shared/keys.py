"""Naming a shared crawl in Redis, hashing its URLs, and reaching the server.

Clients do not retry by themselves; a worker's calls go through `RedisRetry`, which waits
for a server that is away (a restart, a blip) up to --frontier-timeout.

Every key of crawl NAME starts with `ishan:crawl:{NAME}:` (the braces are a Redis Cluster
hash tag: one crawl, one slot); `redis_scripts` lists the keys. URL hashes are the first 8
bytes of BLAKE2b as a signed 64-bit integer: the same in every process and on every machine,
unlike Python's salted `hash()`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import redis.asyncio
from redis.backoff import NoBackoff

from ishan_tools.crawl.events import Emit
from ishan_tools.errors import CrawlError

__all__ = [
    "KEY_ROOT",
    "REDIS_DOWN",
    "CrawlKeys",
    "RedisRetry",
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


T = TypeVar("T")


class RedisRetry:
    """`await retry(func, *args)`: `await func(*args)`, retried with backoff while the server
    at `url` is away, at most `timeout` seconds in a row (events `frontier_lost` and
    `frontier_back` to `emit`); after that it raises CrawlError, kept in `failure`."""

    def __init__(self, url: str, timeout: float, emit: Emit) -> None:
        self.url = url
        self.timeout = timeout
        self.emit = emit
        self.failure: CrawlError | None = None
        self._down_since: float | None = None

    async def __call__(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        delay = 0.05
        while True:
            try:
                result = await func(*args)
            except REDIS_DOWN as exc:
                now = time.monotonic()
                if self._down_since is None:
                    self._down_since = now
                    self.emit("frontier_lost", frontier=self.url, error=str(exc) or repr(exc))
                waited = now - self._down_since
                if waited >= self.timeout:
                    self.failure = unreachable(
                        self.url,
                        exc,
                        f"no answer for {waited:.0f} s (--frontier-timeout); what this worker "
                        "held goes back to the queue: start Redis and run it again",
                    )
                    raise self.failure from None
                await asyncio.sleep(min(delay, self.timeout - waited))
                delay = min(delay * 2, 1.0)
                continue
            if self._down_since is not None:
                self.emit("frontier_back", frontier=self.url, after_s=round(self._pause(), 3))
            return result

    def _pause(self) -> float:
        started, self._down_since = self._down_since, None
        return 0.0 if started is None else time.monotonic() - started
