"""The frontier: URLs waiting to be fetched, breadth-first, one queue per host.

- Dedupe: a set of 64-bit hashes of every URL ever queued (no URL strings kept for it).
- Traps: URLs longer than `max_url_length`, and more than `max_query_variants` URLs that
  differ only in their query string on one path, are refused.
- Order: each host's queue is a heap on (depth, arrival), so shallower pages go first.
- Bounded memory: at most `memory_cap` URLs wait in memory. Beyond that they stay only in
  the frontier log on disk (every queued URL is logged there anyway, for --resume) and are
  read back in arrival order as the memory queue drains.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ishan_tools.crawl.storage import Storage
from ishan_tools.crawl.urls import host_key

__all__ = ["Frontier", "QueuedURL"]


@dataclass(order=True, slots=True)
class QueuedURL:
    """One URL waiting in a host queue; `attempts` survives requeues (open breaker)."""

    depth: int
    seq: int
    url: str = field(compare=False)
    host: str = field(compare=False)
    attempts: int = field(default=0, compare=False)
    followed: set[str] | None = field(default=None, compare=False)


class Frontier:
    """Queued URLs by host; see the module docstring."""

    def __init__(
        self,
        storage: Storage,
        *,
        memory_cap: int = 50_000,
        max_url_length: int = 2048,
        max_query_variants: int = 100,
    ) -> None:
        self.storage = storage
        self.memory_cap = max(1, memory_cap)
        self.max_url_length = max_url_length
        self.max_query_variants = max_query_variants
        self.queues: dict[str, list[QueuedURL]] = {}
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

    def host_of(self, url: str) -> str:
        return host_key(url)

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
