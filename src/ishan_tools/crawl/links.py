"""Link extraction from HTML with selectolax's lexbor parser (the crawler's hot path).

Returns the distinct raw hrefs of a page, split into followable and `rel=nofollow` ones,
plus the page's `<base href>` and its `<meta name=robots>` directives. Resolution and
normalization happen in `urls.LinkResolver`, once per distinct href.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser

__all__ = ["PageLinks", "clean_href", "decode_html", "extract_links", "looks_binary"]

# What the WHATWG URL parser strips from both ends (C0 controls and space) and removes
# everywhere (tab, LF, CR) before it reads the scheme: `java\nscript:` is `javascript:`.
_C0_OR_SPACE = "".join(map(chr, range(0x21)))
_TAB_OR_NEWLINE = str.maketrans("", "", "\t\n\r")

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""", re.I)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([a-zA-Z0-9_\-:.]+)", re.I)


@dataclass
class PageLinks:
    """What a page offers the crawler: links to follow, links marked nofollow, directives."""

    hrefs: dict[str, None] = field(default_factory=dict)  # an ordered set: document order
    nofollow_hrefs: dict[str, None] = field(default_factory=dict)
    base: str | None = None
    nofollow: bool = False
    noindex: bool = False


def _known_codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_html(body: bytes, content_type: str) -> tuple[str, str]:
    """Decode a page: header charset, else `<meta charset>`, else UTF-8; bad bytes replaced.

    Returns the text and the codec used. Invalid or mixed encodings never raise.
    """
    match = _HEADER_CHARSET.search(content_type)
    codec = _known_codec(match.group(1) if match else None)
    if codec is None:
        meta = _META_CHARSET.search(body[:2048])
        codec = _known_codec(meta.group(1).decode("ascii") if meta else None)
    codec = codec or "utf-8"
    return body.decode(codec, errors="replace"), codec


def looks_binary(body: bytes) -> bool:
    """True when a body said to be HTML is not text (NUL bytes near its start)."""
    return b"\x00" in body[:1024]


def clean_href(href: str) -> str:
    """`href` as a browser reads it: leading and trailing C0 controls and spaces stripped,
    every ASCII tab and newline removed (the WHATWG URL standard's first steps)."""
    href = href.strip(_C0_OR_SPACE)
    if "\t" in href or "\n" in href or "\r" in href:
        href = href.translate(_TAB_OR_NEWLINE)
    return href


def extract_links(html: str) -> PageLinks:
    """The distinct hrefs of `<a>` and `<area>` elements, honouring nofollow directives."""
    tree = LexborHTMLParser(html)
    page = PageLinks()
    for meta in tree.css("meta[name]"):
        attrs = meta.attributes
        if (attrs.get("name") or "").strip().lower() in ("robots", "ishan-crawl"):
            directives = (attrs.get("content") or "").lower()
            page.nofollow = page.nofollow or "nofollow" in directives or "none" in directives
            page.noindex = page.noindex or "noindex" in directives or "none" in directives
    base = tree.css_first("base[href]")
    if base is not None:
        page.base = clean_href(base.attributes.get("href") or "") or None
    if page.nofollow:
        return page
    hrefs = page.hrefs
    for node in tree.css("a[href], area[href]"):
        attrs = node.attributes
        href = clean_href(attrs.get("href") or "")
        if not href:
            continue
        rel = attrs.get("rel")
        if rel and "nofollow" in rel.lower():
            page.nofollow_hrefs[href] = None
        else:
            hrefs[href] = None
    for href in hrefs:
        page.nofollow_hrefs.pop(href, None)
    return page
