"""Reading sitemap.xml files (plain URL sets and sitemap indexes) without an XML parser.

Only `<loc>` values are needed, so a regular expression reads them; it cannot be made to
expand entities or fetch anything, unlike a full XML parser on hostile input.
"""

from __future__ import annotations

import html
import re

__all__ = ["parse_sitemap"]

_LOC = re.compile(r"<(?:\w+:)?loc>\s*(.*?)\s*</(?:\w+:)?loc>", re.S | re.I)
_INDEX = re.compile(r"<(?:\w+:)?sitemapindex[\s>]", re.I)


def parse_sitemap(text: str) -> tuple[list[str], bool]:
    """The `<loc>` URLs of a sitemap, and whether it is a sitemap index (its URLs are
    further sitemaps rather than pages)."""
    urls = [html.unescape(match) for match in _LOC.findall(text)]
    return urls, bool(_INDEX.search(text))
