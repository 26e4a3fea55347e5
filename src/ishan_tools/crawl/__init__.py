"""`ishan_tools.crawl`: a fast, polite same-host web crawler, usable without Typer.

    import asyncio
    from ishan_tools.crawl import CrawlConfig, Crawler
    summary = asyncio.run(Crawler(CrawlConfig(seed="example.com", max_depth=2)).run())

`Crawler(config, client=..., transport=..., sink=...)` takes an injectable
`httpx.AsyncClient` (or transport) and an event sink (any callable taking an `Event`).
The names below load lazily, so that `ishan --help` does not import httpx or selectolax.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ishan_tools._lazy import lazy_exports

if TYPE_CHECKING:
    from ishan_tools.crawl.config import DEFAULT_USER_AGENT, CrawlConfig
    from ishan_tools.crawl.engine import Crawler, CrawlResult
    from ishan_tools.crawl.events import CrawlStats, Event, EventSink, null_sink
    from ishan_tools.crawl.urls import normalize, parse_seed, url_hash

_EXPORTS = {
    "DEFAULT_USER_AGENT": "config",
    "CrawlConfig": "config",
    "CrawlResult": "engine",
    "Crawler": "engine",
    "CrawlStats": "events",
    "Event": "events",
    "EventSink": "events",
    "null_sink": "events",
    "normalize": "urls",
    "parse_seed": "urls",
    "url_hash": "urls",
}

__all__ = [
    "DEFAULT_USER_AGENT",
    "CrawlConfig",
    "CrawlResult",
    "CrawlStats",
    "Crawler",
    "Event",
    "EventSink",
    "normalize",
    "null_sink",
    "parse_seed",
    "url_hash",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
