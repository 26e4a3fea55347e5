"""Per-host state in this process: robots.txt, its Crawl-delay, the circuit breaker.

Each host the crawl touches gets one `HostState`. A local frontier asks its `gate(active)`
before it hands out one of that host's URLs: while robots.txt loads only one request goes,
and an open circuit holds the host's URLs in the queue. (Slots and delays are the
frontier's; a shared frontier keeps them, and the circuit's state, for every worker.)
"""

from __future__ import annotations

import asyncio
import zlib
from urllib.parse import urljoin

import httpx
from protego import Protego

from ishan_tools.breaker import CircuitBreaker, CircuitState
from ishan_tools.crawl.config import CrawlConfig
from ishan_tools.crawl.fetch import fetch_text
from ishan_tools.crawl.frontier import Frontier, RobotsAnswer

__all__ = ["HostState"]

_ROBOTS_MAX_BYTES = 512_000


class HostState:
    """Politeness state of one host (key 'host[:port]', origin 'scheme://host[:port]')."""

    def __init__(self, key: str, origin: str, config: CrawlConfig, breaker: CircuitBreaker) -> None:
        self.key = key
        self.origin = origin
        self.config = config
        self.delay = config.delay
        self.robots: Protego | None = None
        self.robots_ready = not config.obey_robots
        self._robots_lock = asyncio.Lock()
        self.breaker = breaker  # what each fetch attempt goes through

    def gate(self, active: int) -> float | None:
        """0 when a URL of this host may start now, seconds to wait, or None (wait until one
        of the `active` requests ends). A local frontier's question: a shared frontier's claim
        reads the shared circuit itself."""
        if not self.robots_ready and active:
            return None
        state = self.breaker.state
        if state is CircuitState.OPEN:
            return max(0.01, self.breaker.stats().retry_after)
        if state is CircuitState.HALF_OPEN and active:
            return None
        return 0.0

    # -- robots.txt ---------------------------------------------------------------------------

    def allowed(self, url: str) -> bool:
        """robots.txt allows this URL for our user agent (always True when ignored)."""
        if self.robots is None:
            return True
        return bool(self.robots.can_fetch(url, self.config.user_agent))

    async def load_robots(
        self, client: httpx.AsyncClient, headers: dict[str, str], frontier: Frontier
    ) -> tuple[str, dict[str, object]] | None:
        """Fetch and parse robots.txt once; returns an event (name, fields) to log, if any.

        It comes through the frontier's robots cache (fetched here unless another worker
        did), and the frontier hears when it is loaded. A missing robots.txt (4xx) allows
        everything; an unreachable or malformed one is logged as `robots_err` and also allows
        everything. A Crawl-delay above --delay raises `delay` (event `robots`).
        """
        async with self._robots_lock:
            if self.robots_ready:
                return None
            url = self.origin + "/robots.txt"

            async def fetch() -> RobotsAnswer:
                try:
                    return await fetch_text(
                        client, url, headers, timeout=self.config.timeout, limit=_ROBOTS_MAX_BYTES
                    )
                except (httpx.HTTPError, TimeoutError, ValueError, zlib.error) as exc:
                    return 0, str(exc) or type(exc).__name__

            status, text = await frontier.robots(self.key, fetch)
            event: tuple[str, dict[str, object]] | None = None
            try:
                if status == 200:
                    self.robots = Protego.parse(text)
                    event = self._apply_crawl_delay(url)
                elif status >= 500:
                    event = ("robots_err", {"url": url, "error": f"HTTP {status}"})
                elif status == 0:
                    event = ("robots_err", {"url": url, "error": text})
            except Exception as exc:  # protego raising on hostile input
                self.robots = None
                event = ("robots_err", {"url": url, "error": f"malformed robots.txt: {exc}"})
            raised = event is not None and event[0] == "robots"
            await frontier.robots_loaded(self.key, self.delay if raised else None)
            self.robots_ready = True
            return event

    def _apply_crawl_delay(self, url: str) -> tuple[str, dict[str, object]] | None:
        assert self.robots is not None
        crawl_delay = self.robots.crawl_delay(self.config.user_agent)
        if crawl_delay is None or crawl_delay <= self.delay:
            return None
        self.delay = min(float(crawl_delay), self.config.max_crawl_delay)
        return ("robots", {"url": url, "crawl_delay": self.delay})

    def sitemaps(self) -> list[str]:
        """Sitemap URLs robots.txt names (relative ones resolved against the host)."""
        if self.robots is None:
            return []
        return [urljoin(self.origin + "/robots.txt", url) for url in self.robots.sitemaps]
