"""The frontier interface: where queued URLs wait and which host may be fetched now.

The engine asks a frontier for work (`claim`), reports each URL's end (`done`, or `release`
when its host's circuit is open) and hands it the links a page queued (`push`). Politeness
is the frontier's choice: a URL is handed out only when its host has a free slot
(`--per-host-concurrency`), its delay (`--delay`, robots.txt Crawl-delay) has run and its
circuit admits a call; limits (`--max-pages`, `--max-bytes`, `--max-time`) end the hand-out.

Two implementations, so that the engine does not know which one it has:
- `LocalFrontier` (local_frontier.py): this process only, in memory with an on-disk log;
- `RedisFrontier` (shared/frontier.py): one crawl shared by any number of worker processes,
  with leases, global politeness and crawl-wide limits in Redis.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ishan_tools.breaker.store import StoreFactory
from ishan_tools.crawl.sites import Sites

__all__ = ["Frontier", "QueuedURL", "RobotsAnswer", "Seed", "Stop", "Wait"]

RobotsAnswer = tuple[int, str]
"""robots.txt as fetched: (HTTP status, text); status 0 means it could not be fetched and the
text is the error."""


@dataclass(order=True, slots=True)
class QueuedURL:
    """One URL handed out by a frontier; `attempts` survives requeues (open breaker).

    `token` is its lease in a shared frontier; `size` the body bytes its page counted.
    """

    depth: int
    seq: int
    url: str = field(compare=False)
    host: str = field(compare=False)
    attempts: int = field(default=0, compare=False)
    followed: set[str] | None = field(default=None, compare=False)
    token: str = field(default="", compare=False)
    size: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing may be fetched now: ask again after `seconds` (None: when a URL ends here)."""

    seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """Nothing more will be handed out: 'complete', 'max_pages', 'max_bytes' or 'max_time'."""

    reason: str


@dataclass(frozen=True, slots=True)
class Seed:
    """This process is to seed the crawl now (a shared crawl whose first seeder went away)."""


Gate = Callable[[str, int], float | None]
"""What the engine adds to a host's politeness in a local frontier: (host, requests in
flight) -> 0.0 when a request may start, seconds to wait, or None (wait for one to end)."""


class Frontier(Protocol):
    """What the engine needs of a frontier; see the module docstring."""

    @property
    def queued(self) -> int:
        """URLs waiting (in the whole crawl, for a shared frontier; as last seen)."""
        ...

    async def join(self, sites: Sites) -> None:
        """Join the crawl, before anything is written: a shared frontier connects, refuses
        (UsageError) a worker whose options differ from the crawl's, naming them, and fills
        `sites` in when they were not given."""
        ...

    async def open(
        self, sites: Sites, previous: dict[str, dict[str, Any]] | None
    ) -> tuple[bool, dict[str, int] | None]:
        """Get ready: (whether this process is to seed the crawl, what a resumed local crawl
        restored: {'done': N, 'pending': N}, else None). `previous` is the manifest of a
        local crawl being resumed (None: not resuming)."""
        ...

    async def seeded(self) -> None:
        """The start URLs (and sitemaps) are queued."""
        ...

    async def close(self) -> None:
        """Give back what this process holds (a shared frontier's leases) and disconnect."""
        ...

    def time_left(self) -> float | None:
        """Seconds left of --max-time for the whole crawl, when the frontier knows better."""
        ...

    # -- adding URLs --------------------------------------------------------------------------

    def seen(self, url: str) -> bool:
        """True when `url` is known to be queued or fetched (as far as this process knows)."""
        ...

    def check(self, url: str) -> str | None:
        """Why a found URL must not be queued ('duplicate', 'url_too_long', 'query_trap'), as
        far as this process knows, or None."""
        ...

    def mark_seen(self, url: str) -> None:
        """Remember a URL reached another way (a redirect target)."""
        ...

    async def push(self, item: QueuedURL | None, entries: list[tuple[str, int]]) -> None:
        """Queue (url, depth) pairs `check` passed, found on `item`'s page (None: seeds).
        A shared frontier may hold them until `done(item)`."""
        ...

    async def redirect_seen(self, source: str, target: str) -> bool:
        """True when a redirect target is already queued or fetched under its own name (not
        merely claimed by an earlier fetch of `source`)."""
        ...

    async def claim_redirect(self, source: str, target: str) -> bool:
        """Claim a redirect target as seen for `source`; False when someone else had it."""
        ...

    # -- taking URLs --------------------------------------------------------------------------

    async def claim(self) -> QueuedURL | Wait | Stop | Seed:
        """The next URL that may be fetched now, or how long to wait, or the end."""
        ...

    async def starting(self, item: QueuedURL) -> None:
        """The fetch of `item` starts now: its host's delay runs from here."""
        ...

    async def done(self, item: QueuedURL, outcome: str) -> list[tuple[str, str]]:
        """`item` ended: 'done' (page handled), 'failed' (for good) or 'skipped' (robots.txt,
        not a page). Returns the links of its page that were refused now, with the reason."""
        ...

    async def release(self, item: QueuedURL) -> None:
        """Put `item` back unfetched (its host's circuit is open)."""
        ...

    # -- per-host state -----------------------------------------------------------------------

    def breaker_store(self, host: str) -> StoreFactory:
        """Where the state of `host`'s circuit breaker lives: this process's memory, or a store
        every worker shares (the engine builds the breaker itself, the same in both)."""
        ...

    async def robots(self, host: str, fetch: Callable[[], Awaitable[RobotsAnswer]]) -> RobotsAnswer:
        """robots.txt of `host`: fetched with `fetch`, or as another worker fetched it."""
        ...

    async def robots_loaded(self, host: str, delay: float | None) -> None:
        """`host`'s robots.txt is parsed; `delay` is its Crawl-delay when it raises --delay."""
        ...

    async def move_site(self, seed: str, host: str) -> None:
        """The site of start URL `seed` moved to `host` (tell the other workers)."""
        ...

    async def site_roots(self) -> dict[str, str]:
        """Start URL -> root host of every site, as the crawl knows them."""
        ...
