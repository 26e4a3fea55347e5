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
    from ishan_tools.crawl.config import DEFAULT_USER_AGENT as DEFAULT_USER_AGENT
    from ishan_tools.crawl.config import CrawlConfig as CrawlConfig
    from ishan_tools.crawl.engine import Crawler as Crawler
    from ishan_tools.crawl.engine import CrawlResult as CrawlResult
    from ishan_tools.crawl.events import CrawlStats as CrawlStats
    from ishan_tools.crawl.events import Event as Event
    from ishan_tools.crawl.events import EventSink as EventSink
    from ishan_tools.crawl.events import null_sink as null_sink
    from ishan_tools.crawl.urls import normalize as normalize
    from ishan_tools.crawl.urls import parse_seed as parse_seed
    from ishan_tools.crawl.urls import url_hash as url_hash

__all__, __getattr__ = lazy_exports(__name__, __file__)
