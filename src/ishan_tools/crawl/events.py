"""The crawl's one stream of typed events, and the running statistics derived from it.

Event names keep the original crawler's (`seed, response, fetch, save, skip_links, link_skip,
fetch_err, save_err`) and add `redirect, retry, robots, robots_skip, robots_err, not_modified,
skip, sitemap, seed_moved, breaker_open, breaker_half_open, breaker_closed, resume, summary`.
A sink is any callable taking an `Event`; the library never writes to the terminal itself.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CrawlStats", "Emit", "Event", "EventSink", "fan_out", "null_sink"]


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened: its name, when (Unix time), and its fields."""

    name: str
    ts: float
    fields: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.name, "ts": round(self.ts, 6), **self.fields}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


EventSink = Callable[[Event], None]
Emit = Callable[..., None]
"""How library code reports an event: `emit(name, **fields)`."""


def null_sink(event: Event) -> None:
    """A sink that discards every event."""


@dataclass
class CrawlStats:
    """Counters the progress display and the final summary read; updated by the crawler."""

    started: float = field(default_factory=time.monotonic)
    fetched: int = 0
    saved: int = 0
    bytes: int = 0
    not_modified: int = 0
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    queued: int = 0
    in_flight: int = 0
    # Hosts whose circuit breaker left "closed": {host: {"state": now, "opened": times}}.
    breakers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def breaker_moved(self, host: str, state: str) -> None:
        """`host`'s circuit breaker moved to `state` (closed, open, half_open)."""
        seen = self.breakers.setdefault(host, {"state": state, "opened": 0})
        seen["state"] = state
        seen["opened"] += state == "open"

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def summary(self, stop_reason: str) -> dict[str, Any]:
        """The fields of the `summary` event."""
        duration = self.elapsed()
        return {
            "stop_reason": stop_reason,
            "pages": self.fetched,
            "saved": self.saved,
            "bytes": self.bytes,
            "not_modified": self.not_modified,
            "retries": self.retries,
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(sorted(self.errors.items())),
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "queued": self.queued,
            "breakers": {host: dict(seen) for host, seen in sorted(self.breakers.items())},
            "duration_s": round(duration, 3),
            "pages_per_s": round(self.fetched / duration, 2) if duration > 0 else 0.0,
        }


def fan_out(*sinks: EventSink) -> EventSink:
    """One sink that hands each event to every one of `sinks`, in order."""

    def sink(event: Event) -> None:
        for each in sinks:
            each(event)

    return sink
