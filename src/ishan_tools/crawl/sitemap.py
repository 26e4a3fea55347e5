"""Reading sitemap.xml files (plain URL sets and sitemap indexes) without an XML parser.

Only `<loc>` values are needed, so a regular expression reads them; it cannot be made to
expand entities or fetch anything, unlike a full XML parser on hostile input.
"""

from __future__ import annotations

import html
import re
import zlib

import httpx

from ishan_tools.crawl.events import Emit
from ishan_tools.crawl.fetch import fetch_text

__all__ = ["parse_sitemap", "read_sitemaps"]

_MAX_SITEMAPS = 50

_LOC = re.compile(r"<(?:\w+:)?loc>\s*(.*?)\s*</(?:\w+:)?loc>", re.S | re.I)
_INDEX = re.compile(r"<(?:\w+:)?sitemapindex[\s>]", re.I)


def parse_sitemap(text: str) -> tuple[list[str], bool]:
    """The `<loc>` URLs of a sitemap, and whether it is a sitemap index (its URLs are
    further sitemaps rather than pages)."""
    urls = [html.unescape(match) for match in _LOC.findall(text)]
    return urls, bool(_INDEX.search(text))


async def read_sitemaps(
    client: httpx.AsyncClient,
    first: list[str],
    headers: dict[str, str],
    *,
    timeout: float,
    limit: int,
    emit: Emit,
) -> tuple[int, list[str]]:
    """The page URLs of the sitemaps `first` names, indexes followed (at most 50 sitemaps);
    returns (sitemaps read, URLs as written). A sitemap that fails is a `fetch_err`."""
    pending = list(first)
    seen: set[str] = set()
    found: list[str] = []
    while pending and len(seen) < _MAX_SITEMAPS:
        sitemap_url = pending.pop(0)
        if sitemap_url in seen:
            continue
        seen.add(sitemap_url)
        try:
            status, text = await fetch_text(
                client, sitemap_url, headers, timeout=timeout, limit=limit
            )
        except (httpx.HTTPError, TimeoutError, zlib.error) as exc:
            emit("fetch_err", url=sitemap_url, kind="sitemap", error=str(exc))
            continue
        if status != 200:
            emit("fetch_err", url=sitemap_url, kind="sitemap", error=f"HTTP {status}")
            continue
        urls, is_index = parse_sitemap(text)
        (pending if is_index else found).extend(urls)
    return len(seen), found
