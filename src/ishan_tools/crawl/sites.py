"""The sites of a crawl: one per start URL, each with its own host rule.

Every start URL is its own site. A page belongs to the site whose root host it is on (or a
subdomain of it, with `allow_subdomains`); a link from it is followed only when it stays on
that site. A link to another site of the same crawl is "other_host" from there: that site's
own crawl finds its pages. A start URL that redirects to another host before anything else of
its site was fetched moves its site there (`example.com` -> `www.example.com`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ishan_tools.crawl.urls import host_key, parse_seed
from ishan_tools.errors import UsageError

__all__ = ["Sites", "crawl_id_for", "read_seeds_file"]

_CRAWL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


def read_seeds_file(path: Path) -> list[str]:
    """The start URLs of a seeds file: one URL or bare host a line, `#` starts a comment."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read --seeds {path} ({reason or exc})") from None
    seeds = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            seeds.append(entry)
    return seeds


def start_urls(raw: list[str], *, sort_query: bool) -> list[str]:
    """Normalized start URLs in the order given, each once."""
    return list(dict.fromkeys(parse_seed(seed, sort_query=sort_query) for seed in raw))


def crawl_id_for(urls: list[str]) -> str:
    """The default `--crawl-id`: a host and a hash of the start URLs, so that every process
    started with the same URLs, in any order, names the same crawl."""
    ordered = sorted(urls)
    digest = hashlib.sha256("\n".join(ordered).encode()).hexdigest()[:10]
    first = host_key(ordered[0]).replace("[", "").replace("]", "")
    return f"{first}-{digest}"


def check_crawl_id(name: str, option: str = "--crawl-id") -> str:
    """`name` when it is fit to be part of Redis key names (a crawl or worker id)."""
    if not _CRAWL_ID.match(name):
        raise UsageError(
            f"{option} {name!r}: use letters, digits and . _ : - (at most 100, "
            "starting with a letter or digit)"
        )
    return name


class Sites:
    """The start URLs and the root host each site is on now."""

    def __init__(self, urls: list[str], *, allow_subdomains: bool) -> None:
        self.urls = urls
        self.allow_subdomains = allow_subdomains
        self.roots: dict[str, str] = {}  # start URL -> root host
        self._by_host: dict[str, str | None] = {}  # host -> start URL, cached
        self._moved: dict[str, str] = {}  # old root host -> start URL
        for url in urls:
            self.roots[url] = host_key(url)

    def adopt(self, urls: list[str]) -> None:
        """Take the start URLs of a shared crawl joined without naming them."""
        self.urls = list(urls)
        for url in urls:
            self.roots.setdefault(url, host_key(url))
        self._by_host.clear()

    @property
    def first(self) -> str:
        return self.urls[0]

    def set_root(self, seed: str, host: str) -> None:
        """The site of `seed` now lives on `host` (its start URL redirected there)."""
        old = self.roots.get(seed)
        if old is not None and old != host:
            self._moved[old] = seed
        self.roots[seed] = host
        self._by_host.clear()

    def site_of(self, host: str) -> str | None:
        """The start URL of the site a host belongs to, or None."""
        site = self._by_host.get(host, "")
        if site != "":
            return site
        site = self._moved.get(host)
        best = -1
        for seed, root in self.roots.items():
            if host == root:
                site = seed
                break
            if self.allow_subdomains and host.endswith("." + root) and len(root) > best:
                site, best = seed, len(root)
        self._by_host[host] = site
        return site

    def in_site(self, host: str, seed: str) -> bool:
        """True when a URL on `host` belongs to the site of `seed`."""
        root = self.roots.get(seed)
        if root is None:
            return False
        return host == root or (self.allow_subdomains and host.endswith("." + root))
