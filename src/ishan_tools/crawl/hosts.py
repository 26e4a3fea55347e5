"""Per-host politeness: robots.txt, delay between requests, concurrency slots, circuit breaker.

Each host the crawl touches gets one `HostState`. The engine asks `wait_time(now)` before it
hands one of that host's URLs to a worker: a host with no free slot, a delay still running,
robots.txt still loading or an open circuit waits, and its URLs stay queued.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable
from urllib.parse import urljoin

import httpx
from protego import Protego

from ishan_tools.breaker import CircuitBreaker, CircuitState
from ishan_tools.crawl.config import CrawlConfig
from ishan_tools.crawl.fetch import counts_for_breaker

__all__ = ["HostState", "fetch_text"]

_ROBOTS_MAX_BYTES = 512_000


async def fetch_text(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], *, timeout: float, limit: int
) -> tuple[int, str]:
    """GET a small text resource (robots.txt, a sitemap), redirects followed, size capped.

    A gzip body (sitemap.xml.gz) is inflated, also at most `limit` bytes. Returns (status,
    text); raises httpx errors, zlib.error and TimeoutError for the caller to log.
    """
    async with (
        asyncio.timeout(timeout),
        client.stream("GET", url, headers=headers, follow_redirects=True) as response,
    ):
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                break
            chunks.append(chunk)
        body = b"".join(chunks)
        if body[:2] == b"\x1f\x8b":
            body = zlib.decompressobj(wbits=47).decompress(body, limit)
        return response.status_code, body.decode("utf-8", errors="replace")


class HostState:
    """Politeness state of one host (key 'host[:port]', origin 'scheme://host[:port]')."""

    def __init__(
        self,
        key: str,
        origin: str,
        config: CrawlConfig,
        on_breaker_change: Callable[[str, CircuitState, CircuitState], None],
    ) -> None:
        self.key = key
        self.origin = origin
        self.config = config
        self.delay = config.delay
        self.slots = config.per_host_concurrency
        self.active = 0
        self.next_start = 0.0
        self.robots: Protego | None = None
        self.robots_ready = not config.obey_robots
        self._robots_lock = asyncio.Lock()
        self.breaker = CircuitBreaker(
            failure_threshold=config.breaker_threshold,
            recovery_timeout=config.breaker_cooldown,
            failure_predicate=counts_for_breaker,
            name=key,
            on_state_change=lambda old, new: on_breaker_change(key, old, new),
        )

    def wait_time(self, now: float) -> float | None:
        """0 when a URL of this host may start now, seconds to wait, or None (wait for a slot)."""
        if self.active >= self.slots or (not self.robots_ready and self.active):
            return None
        state = self.breaker.state
        if state is CircuitState.OPEN:
            return max(0.01, self.breaker.stats().retry_after)
        if state is CircuitState.HALF_OPEN and self.active:
            return None
        return max(0.0, self.next_start - now)

    def start(self, now: float) -> None:
        self.active += 1
        self.next_start = now + self.delay

    def done(self) -> None:
        self.active -= 1

    # -- robots.txt ---------------------------------------------------------------------------

    def allowed(self, url: str) -> bool:
        """robots.txt allows this URL for our user agent (always True when ignored)."""
        if self.robots is None:
            return True
        return bool(self.robots.can_fetch(url, self.config.user_agent))

    async def load_robots(
        self, client: httpx.AsyncClient, headers: dict[str, str]
    ) -> tuple[str, dict[str, object]] | None:
        """Fetch and parse robots.txt once; returns an event (name, fields) to log, if any.

        A missing robots.txt (4xx) allows everything; an unreachable or malformed one is
        logged as `robots_err` and also allows everything.
        """
        async with self._robots_lock:
            if self.robots_ready:
                return None
            url = self.origin + "/robots.txt"
            event: tuple[str, dict[str, object]] | None = None
            try:
                status, text = await fetch_text(
                    client, url, headers, timeout=self.config.timeout, limit=_ROBOTS_MAX_BYTES
                )
                if status == 200:
                    self.robots = Protego.parse(text)
                    event = self._apply_crawl_delay(url)
                elif status >= 500:
                    event = ("robots_err", {"url": url, "error": f"HTTP {status}"})
            except (httpx.HTTPError, TimeoutError, ValueError, zlib.error) as exc:
                event = ("robots_err", {"url": url, "error": str(exc) or type(exc).__name__})
            except Exception as exc:  # protego raising on hostile input
                self.robots = None
                event = ("robots_err", {"url": url, "error": f"malformed robots.txt: {exc}"})
            self.robots_ready = True
            return event

    def _apply_crawl_delay(self, url: str) -> tuple[str, dict[str, object]] | None:
        assert self.robots is not None
        crawl_delay = self.robots.crawl_delay(self.config.user_agent)
        if crawl_delay is None or crawl_delay <= self.delay:
            return None
        self.delay = min(float(crawl_delay), self.config.max_crawl_delay)
        self.next_start = time.monotonic() + self.delay
        return ("robots", {"url": url, "crawl_delay": self.delay})

    def sitemaps(self) -> list[str]:
        """Sitemap URLs robots.txt names (relative ones resolved against the host)."""
        if self.robots is None:
            return []
        return [urljoin(self.origin + "/robots.txt", url) for url in self.robots.sitemaps]
