"""The local frontier: URLs waiting to be fetched by this process, breadth-first, per host.

- Dedupe: a set of 64-bit hashes of every URL ever queued (no URL strings kept for it).
- Traps: URLs longer than `max_url_length`, and more than `max_query_variants` URLs that
  differ only in their query string on one path, are refused.
- Order: each host's queue is a heap on (depth, arrival), so shallower pages go first.
- Bounded memory: at most `memory_cap` URLs wait in memory. Beyond that they stay only in
  the frontier log on disk (every queued URL is logged there anyway, for --resume) and are
  read back in arrival order as the memory queue drains.
- Hand-out: the URL first in (depth, arrival) order among the hosts that may be fetched now
  (a free slot, the delay run, and the engine's gate: robots.txt loaded, circuit closed).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ishan_tools.breaker.store import MemoryStore, StoreFactory
from ishan_tools.crawl.frontier import Gate, QueuedURL, RobotsAnswer, Seed, Stop, Wait
from ishan_tools.crawl.sites import Sites
from ishan_tools.crawl.storage import Storage
from ishan_tools.crawl.urls import host_key

__all__ = ["LocalFrontier"]


@dataclass(slots=True)
class _Slots:
    """A host's politeness in this process: requests in flight, the next start, its delay."""

    delay: float
    active: int = 0
    next_start: float = 0.0


class LocalFrontier:
    """Queued URLs by host, in this process; see the module docstring."""

    def __init__(
        self,
        storage: Storage,
        *,
        memory_cap: int = 50_000,
        max_url_length: int = 2048,
        max_query_variants: int = 100,
        per_host_concurrency: int = 8,
        delay: float = 0.0,
        max_pages: int = 0,
        max_bytes: int = 0,
        retry_failed: bool = False,
        gate: Gate | None = None,
    ) -> None:
        self.storage = storage
        self.memory_cap = max(1, memory_cap)
        self.max_url_length = max_url_length
        self.max_query_variants = max_query_variants
        self.per_host_concurrency = per_host_concurrency
        self.delay = delay
        self.max_pages = max_pages
        self.max_bytes = max_bytes
        self.retry_failed = retry_failed
        self.gate: Gate = gate or (lambda host, active: 0.0)
        self.queues: dict[str, list[QueuedURL]] = {}
        self._slots: dict[str, _Slots] = {}
        self._active = 0
        self._dispatched = 0
        self._bytes = 0
        self._seen: set[int] = set()
        self._finished: set[int] = set()
        self._query_variants: dict[int, int] = {}
        self._seq = itertools.count()
        self._in_memory = 0
        self.peak_in_memory = 0
        self._backlog_offset: int | None = None
        self._backlog_count = 0

    # -- size ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        """URLs waiting, in memory and in the on-disk backlog."""
        return self._in_memory + self._backlog_count

    @property
    def queued(self) -> int:
        return len(self)

    def host_of(self, url: str) -> str:
        return host_key(url)

    async def join(self, sites: Sites) -> None:
        pass

    async def open(
        self, sites: Sites, previous: dict[str, dict[str, Any]] | None
    ) -> tuple[bool, dict[str, int] | None]:
        """Restore the frontier log of a crawl being resumed; seed when it holds nothing."""
        if previous is None:
            return True, None
        failed = {url for url, rec in previous.items() if rec.get("error")}
        done = set(previous) - failed if self.retry_failed else set(previous)
        pending = self.restore(self.storage.frontier_from(0), done)
        return not (pending or done), {"done": len(done), "pending": pending}

    async def seeded(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def time_left(self) -> float | None:
        return None

    # -- adding -------------------------------------------------------------------------------

    def seen(self, url: str) -> bool:
        return hash(url) in self._seen

    def mark_seen(self, url: str) -> None:
        """Remember a URL reached another way (a redirect target) so it is not queued again."""
        self._seen.add(hash(url))

    def check(self, url: str) -> str | None:
        """Why a new URL must not be queued ('duplicate', 'url_too_long', 'query_trap'), or None."""
        if hash(url) in self._seen:
            return "duplicate"
        if len(url) > self.max_url_length:
            return "url_too_long"
        question = url.find("?")
        if question != -1:
            path_key = hash(url[:question])
            if self._query_variants.get(path_key, 0) >= self.max_query_variants:
                return "query_trap"
        return None

    async def push(self, item: QueuedURL | None, entries: list[tuple[str, int]]) -> None:
        self.push_new(entries)

    async def redirect_seen(self, source: str, target: str) -> bool:
        return self.seen(target)

    async def claim_redirect(self, source: str, target: str) -> bool:
        self.mark_seen(target)
        return True

    def push_new(self, entries: Iterable[tuple[str, int]]) -> None:
        """Queue URLs already accepted by `check` and log them for --resume."""
        for url, depth in entries:
            key = hash(url)
            if key in self._seen:
                continue
            self._seen.add(key)
            self._count_query_variant(url)
            self._admit(url, depth, self.storage.frontier_position())
            self.storage.log_queued(url, depth)

    def _count_query_variant(self, url: str) -> None:
        question = url.find("?")
        if question != -1:
            path_key = hash(url[:question])
            self._query_variants[path_key] = self._query_variants.get(path_key, 0) + 1

    def _admit(self, url: str, depth: int, log_offset: int) -> None:
        """Into memory if there is room and no backlog, else into the backlog (log only)."""
        if self._backlog_offset is None and self._in_memory < self.memory_cap:
            self._enqueue(url, depth, 0)
            return
        if self._backlog_offset is None:
            self._backlog_offset = log_offset
        self._backlog_count += 1

    def _enqueue(self, url: str, depth: int, attempts: int) -> None:
        host = self.host_of(url)
        queue = self.queues.get(host)
        if queue is None:
            queue = self.queues[host] = []
        heapq.heappush(queue, QueuedURL(depth, next(self._seq), url, host, attempts))
        self._in_memory += 1
        self.peak_in_memory = max(self.peak_in_memory, self._in_memory)

    def requeue(self, item: QueuedURL) -> None:
        """Put back a URL that could not be fetched yet (its host's circuit is open)."""
        heapq.heappush(self.queues[item.host], item)
        self._in_memory += 1

    # -- taking -------------------------------------------------------------------------------

    async def claim(self) -> QueuedURL | Wait | Stop | Seed:
        if self.max_pages and self._dispatched >= self.max_pages:
            return Stop("max_pages")
        if self.max_bytes and self._bytes >= self.max_bytes:
            return Stop("max_bytes")
        now = time.monotonic()
        best: QueuedURL | None = None
        wake: float | None = None
        for key, queue in self.queues.items():
            if not queue or (best is not None and queue[0] > best):
                continue
            wait = self._wait_time(key, now)
            if wait == 0.0:
                best = queue[0]
            elif wait is not None:
                wake = wait if wake is None else min(wake, wait)
        if best is not None:
            item = self.pop(best.host)
            slots = self._host_slots(item.host)
            slots.active += 1
            slots.next_start = now + slots.delay
            self._active += 1
            self._dispatched += 1
            return item
        if self._active == 0 and wake is None:
            return Stop("complete")
        return Wait(wake)

    def _wait_time(self, host: str, now: float) -> float | None:
        """0 when a URL of `host` may start now, seconds to wait, or None (wait for a slot)."""
        slots = self._slots.get(host)
        if slots is None:
            return 0.0
        if slots.active >= self.per_host_concurrency:
            return None
        gate = self.gate(host, slots.active)
        if gate != 0.0:
            return gate
        return max(0.0, slots.next_start - now)

    def _host_slots(self, host: str) -> _Slots:
        slots = self._slots.get(host)
        if slots is None:
            slots = self._slots[host] = _Slots(self.delay)
        return slots

    async def starting(self, item: QueuedURL) -> None:
        pass  # handed out and started in one go: the delay ran from the hand-out

    async def done(self, item: QueuedURL, outcome: str) -> list[tuple[str, str]]:
        self._slots[item.host].active -= 1
        self._active -= 1
        self._bytes += item.size
        if outcome == "skipped":
            self._dispatched -= 1
        self.finish(item.url)
        return []

    async def release(self, item: QueuedURL) -> None:
        self._slots[item.host].active -= 1
        self._active -= 1
        self._dispatched -= 1
        self.requeue(item)

    # -- per-host state -----------------------------------------------------------------------

    def breaker_store(self, host: str) -> StoreFactory:
        return MemoryStore

    async def robots(self, host: str, fetch: Callable[[], Awaitable[RobotsAnswer]]) -> RobotsAnswer:
        return await fetch()

    async def robots_loaded(self, host: str, delay: float | None) -> None:
        if delay is not None:
            slots = self._host_slots(host)
            slots.delay = delay
            slots.next_start = time.monotonic() + delay

    async def move_site(self, seed: str, host: str) -> None:
        pass

    async def site_roots(self) -> dict[str, str]:
        return {}

    def pop(self, host: str) -> QueuedURL:
        item = heapq.heappop(self.queues[host])
        self._in_memory -= 1
        if self._backlog_offset is not None and self._in_memory <= self.memory_cap // 2:
            self._refill()
        return item

    def finish(self, url: str) -> None:
        """Record that a URL is done (only needed while a backlog might still hold it)."""
        self._finished.add(hash(url))

    def _refill(self) -> None:
        """Move backlog entries from the on-disk log into memory, up to the cap."""
        assert self._backlog_offset is not None
        room = self.memory_cap - self._in_memory
        offset = self._backlog_offset
        exhausted = True
        for record, next_offset in self.storage.frontier_from(offset):
            if room <= 0:
                exhausted = False
                break
            offset = next_offset
            url, depth = record.get("u"), record.get("d")
            if not isinstance(url, str) or not isinstance(depth, int):
                continue
            if hash(url) not in self._finished:
                self._backlog_count -= 1
                self._enqueue(url, depth, 0)
                room -= 1
        if exhausted:
            self._backlog_offset = None
            self._backlog_count = 0
        else:
            self._backlog_offset = offset

    # -- resume -------------------------------------------------------------------------------

    def restore(self, records: Iterator[tuple[dict[str, object], int]], done: set[str]) -> int:
        """Rebuild from the frontier log of an interrupted crawl; returns URLs still to fetch.

        `records` yields (log record, offset after it) from the start of the log; `done` holds
        the URLs not to fetch again.
        """
        self._finished = {hash(url) for url in done}
        pending = 0
        offset = 0
        for record, next_offset in records:
            url, depth = record.get("u"), record.get("d")
            if isinstance(url, str) and isinstance(depth, int) and hash(url) not in self._seen:
                self._seen.add(hash(url))
                self._count_query_variant(url)
                if hash(url) not in self._finished:
                    pending += 1
                    self._admit(url, depth, offset)
            offset = next_offset
        return pending
