"""URL handling: canonical normalization, the host rule, and cached link resolution.

Link resolution is the crawler's second hot path after parsing: a documentation page holds
hundreds of links and most of them (navigation, footer) repeat on every page. `LinkResolver`
caches the normalized result per (base directory, raw href), so a repeated href costs one
dictionary lookup instead of `urljoin` plus normalization.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit, urlunsplit

from ishan_tools.errors import UsageError

__all__ = [
    "LinkResolver",
    "host_key",
    "normalize",
    "parse_seed",
    "url_hash",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left as they are in a path or query; everything else is percent-encoded.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = "/?%:@!$&'()*+,;=-._~"
_HOST_RE = re.compile(r"^[a-z0-9.\-_\[\]:]+$")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# A URL already in normal form: lower-case http(s) scheme and host, safe characters only.
_CLEAN_URL = re.compile(
    r"(https?)://([a-z0-9.\-]+)(?::([0-9]{1,5}))?/[A-Za-z0-9\-._~/!$&'()*+,;=:@]*"
    r"(?:\?[A-Za-z0-9\-._~/?!$&'()*+,;=:@]*)?"
)
_UNRESERVED_ESCAPE = re.compile(r"%(2[dDeE]|5[fF]|7[eE]|[46][1-9a-fA-F]|[57][0-9aA]|3[0-9])")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, on a path that starts with '/'."""
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")
    for segment in segments[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    trailing = segments[-1] in (".", "..")
    return "/" + "/".join(output) + ("/" if trailing and output else "")


def _decode_unreserved(part: str) -> str:
    """Turn escapes of unreserved characters (%41 -> A, %7E -> ~) back into the characters."""
    if "%" not in part:
        return part
    return _UNRESERVED_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), part)


def _encode_host(host: str) -> str:
    host = host.lower().rstrip(".")
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _already_normal(url: str, *, sort_query: bool) -> bool:
    """The fast path of `normalize`: True when `url` is already in normal form."""
    match = _CLEAN_URL.fullmatch(url)
    if match is None or "/." in url or (sort_query and "?" in url):
        return False
    host, port = match.group(2), match.group(3)
    if host.endswith(".") or not host:
        return False
    if port is None:
        return True
    number = int(port)
    return 0 < number < 65536 and number != _DEFAULT_PORTS[match.group(1)]


def normalize(url: str, *, sort_query: bool = False) -> str | None:
    """The canonical form of an absolute http(s) URL, or None when it is not one.

    Lower-cases scheme and host, drops the default port and the fragment, removes dot
    segments, percent-encodes unsafe characters (and decodes escaped unreserved ones), gives an
    empty path '/', and sorts the query parameters when `sort_query` is set.
    """
    if _already_normal(url, sort_query=sort_query):
        return url
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = _encode_host(parts.hostname)
    if not _HOST_RE.match(host):
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = parts.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    path = _remove_dot_segments(quote(_decode_unreserved(path), safe=_PATH_SAFE))
    query = parts.query
    if query:
        query = quote(_decode_unreserved(query), safe=_QUERY_SAFE)
        if sort_query:
            query = "&".join(sorted(query.split("&")))
    return urlunsplit((scheme, netloc, path, query, ""))


def host_key(url: str) -> str:
    """The key the host rule compares: host and non-default port, whatever the scheme.

    `url` must be normalized (default ports already dropped, no user info, a path), so
    http://h/ and https://h/ share a key while http://h:8080/ does not.
    """
    return url.split("/", 3)[2]


def url_hash(url: str) -> str:
    """The file name stem of a page: the first 16 hex digits of the SHA-256 of its URL."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def parse_seed(seed: str, *, sort_query: bool = False) -> str:
    """Turn a seed URL or bare hostname ('example.com') into a normalized URL.

    Raises UsageError for anything that is not an http(s) URL with a host.
    """
    text = seed.strip()
    if not text:
        raise UsageError("the seed URL is empty: pass a URL such as https://example.com/")
    if "://" not in text:
        text = "https://" + text
    url = normalize(text, sort_query=sort_query)
    if url is None:
        raise UsageError(f"invalid seed URL {seed!r}: expected http(s)://host/ or a bare hostname")
    return url


class LinkResolver:
    """Resolve raw hrefs against a page URL into normalized URLs, with a bounded cache.

    An href is joined to its base by string concatenation (origin for '/x', directory for
    'x', page path for '?q'), fragments dropped first, so that '#a' and '#b' variants and the
    same relative link on pages of one directory share one cache entry; `normalize` then
    removes dot segments. No `urljoin` on the hot path.
    """

    def __init__(self, *, sort_query: bool = False, cache_size: int = 50_000) -> None:
        self.sort_query = sort_query
        self.cache_size = cache_size
        self._cache: dict[str, str | None] = {}

    def resolve(self, base_url: str, hrefs: Iterable[str]) -> dict[str, str | None]:
        """Map each distinct raw href to its normalized absolute URL (None: not http(s)).

        `base_url` must be normalized. Fragment-only hrefs ('#top') point at the page itself
        and map to None.
        """
        scheme_end = base_url.find("//")
        origin_end = base_url.find("/", scheme_end + 2)
        origin = base_url if origin_end == -1 else base_url[:origin_end]
        question = base_url.find("?")
        page = base_url if question == -1 else base_url[:question]
        directory = page[: page.rfind("/") + 1]
        scheme = base_url[:scheme_end]
        cache = self._cache
        resolved: dict[str, str | None] = {}
        for href in hrefs:
            hash_at = href.find("#")
            target = href if hash_at == -1 else href[:hash_at]
            if not target:
                resolved[href] = None
                continue
            first = target[0]
            if first == "/":
                joined = scheme + target if target[:2] == "//" else origin + target
            elif first == "?":
                joined = page + target
            elif _SCHEME.match(target):
                joined = target
            else:
                joined = directory + target
            url = cache.get(joined, "")
            if url == "":
                url = normalize(joined, sort_query=self.sort_query)
                if len(cache) >= self.cache_size:
                    cache.clear()
                cache[joined] = url
            resolved[href] = url
        return resolved
