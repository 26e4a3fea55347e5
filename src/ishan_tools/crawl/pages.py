"""What happens to a fetched page: manifest line, save, link extraction, new URLs queued.

Every outcome, good or bad, ends in exactly one manifest line for the URL, written after the
URLs the page queued are handed to the frontier (in the frontier log, for a local one), so
that --resume never loses a link. A worker of a shared crawl names itself in each line.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ishan_tools.crawl.config import HTML_TYPES, CrawlConfig
from ishan_tools.crawl.events import CrawlStats, Emit
from ishan_tools.crawl.fetch import FetchFailed, FetchResult
from ishan_tools.crawl.frontier import Frontier, QueuedURL
from ishan_tools.crawl.links import PageLinks, decode_html, extract_links, looks_binary
from ishan_tools.crawl.storage import Storage
from ishan_tools.crawl.urls import LinkResolver, url_hash

__all__ = ["PageHandler"]

_SKIP_MEMORY = 100_000


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extension(media_type: str, url: str) -> str:
    if media_type in HTML_TYPES:
        return ".html"
    guessed = mimetypes.guess_extension(media_type) if media_type else None
    if guessed:
        return guessed
    path = url.split("?", 1)[0].rsplit("/", 1)[-1]
    suffix = path.rsplit(".", 1)[-1] if "." in path else ""
    return f".{suffix.lower()}" if suffix.isalnum() and len(suffix) <= 8 else ".bin"


class PageHandler:
    """Turns fetch outcomes into files, manifest lines, events and queued links."""

    def __init__(
        self,
        config: CrawlConfig,
        frontier: Frontier,
        storage: Storage,
        stats: CrawlStats,
        emit: Emit,
        scope: Callable[[str, str], str | None],
        previous: dict[str, dict[str, Any]],
        *,
        site_of: Callable[[str], str],
        worker: str | None = None,
    ) -> None:
        self.config = config
        self.frontier = frontier
        self.storage = storage
        self.stats = stats
        self.emit = emit
        self.scope = scope
        self.previous = previous
        self.site_of = site_of
        self.worker = worker
        self.resolver = LinkResolver(sort_query=config.sort_query)
        self._skipped_links: set[int] = set()

    def conditional_headers(self, url: str) -> dict[str, str] | None:
        """If-None-Match / If-Modified-Since for --refresh, from the previous manifest."""
        record = self.previous.get(url)
        if not record or not record.get("file"):
            return None
        headers = {}
        if record.get("etag"):
            headers["If-None-Match"] = str(record["etag"])
        if record.get("last_modified"):
            headers["If-Modified-Since"] = str(record["last_modified"])
        return headers or None

    # -- outcomes -----------------------------------------------------------------------------

    def failed(self, item: QueuedURL, exc: FetchFailed, elapsed_ms: int) -> None:
        self.stats.errors[exc.kind] += 1
        self.emit("fetch_err", url=item.url, depth=item.depth, kind=exc.kind, error=str(exc))
        self._record(item, None, file=None, error=f"{exc.kind}: {exc}", elapsed_ms=elapsed_ms)

    async def fetched(self, item: QueuedURL, result: FetchResult) -> str | None:
        """Handle a response; returns the error recorded for it (None when it went well)."""
        stats = self.stats
        stats.fetched += 1
        self.emit(
            "response",
            url=item.url,
            final_url=result.final_url,
            status=result.status,
            content_type=result.content_type,
            elapsed_ms=result.elapsed_ms,
        )
        if result.final_url != item.url:
            self.frontier.mark_seen(result.final_url)
        if result.status == 304:
            return await self._not_modified(item, result)
        if 300 <= result.status < 400 and result.final_url != item.url:
            stats.skipped["redirect_to_known_url"] += 1
            self.emit("skip_links", url=item.url, reason=f"redirects to {result.final_url}")
            self._record(item, result, file=None, error=None)
            return None
        if result.status >= 300:
            kind = f"http_{result.status}"
            stats.errors[kind] += 1
            message = f"HTTP {result.status} {result.reason}".strip()
            self.emit("fetch_err", url=item.url, depth=item.depth, kind=kind, error=message)
            self._record(item, result, file=None, error=f"{kind}: {message}")
            return message
        if result.body is None:
            stats.skipped["content_type"] += 1
            self.emit(
                "skip_links", url=item.url, reason=f"content type {result.media_type!r} not saved"
            )
            self._record(item, result, file=None, error=None)
            return None
        return await self._page(item, result, result.body)

    async def _not_modified(self, item: QueuedURL, result: FetchResult) -> str | None:
        self.stats.not_modified += 1
        record = self.previous.get(item.url, {})
        name = record.get("file")
        result.etag = result.etag or record.get("etag")
        result.last_modified = result.last_modified or record.get("last_modified")
        result.content_type = result.content_type or record.get("content_type") or ""
        self.emit("not_modified", url=item.url, file=name)
        body = self.storage.read_page(name) if isinstance(name, str) else None
        if body is not None and str(name).endswith(".html"):
            links = self._links(body, result.content_type)
            await self._follow_links(item, result.final_url, links)
        size = len(body) if body is not None else 0
        self._record(item, result, file=name if body is not None else None, error=None, size=size)
        return None

    async def _page(self, item: QueuedURL, result: FetchResult, body: bytes) -> str | None:
        stats = self.stats
        stats.bytes += len(body)
        item.size = len(body)
        is_html = result.media_type in HTML_TYPES
        if is_html and looks_binary(body):
            stats.errors["not_html"] += 1
            problem = "not_html: binary body served as text/html"
            self.emit("skip_links", url=item.url, reason=problem)
            self._record(item, result, file=None, error=problem, size=len(body))
            return problem
        links = self._links(body, result.content_type) if is_html else PageLinks()
        robots_tag = ",".join(v.lower() for k, v in result.headers if k.lower() == "x-robots-tag")
        noindex = links.noindex or "noindex" in robots_tag or "none" in robots_tag
        links.nofollow = links.nofollow or "nofollow" in robots_tag or "none" in robots_tag
        if is_html:
            await self._follow_links(item, result.final_url, links)
        else:
            self.emit("skip_links", url=item.url, reason="not HTML")
        name: str | None = None
        error: str | None = None
        if noindex:
            stats.skipped["noindex"] += 1
            self.emit("skip", url=item.url, reason="noindex")
        else:
            name = url_hash(result.final_url) + _extension(result.media_type, result.final_url)
            try:
                self.storage.write_page(name, body)
                self.storage.write_warc(
                    result.final_url, result.status, result.reason, result.headers, body
                )
            except OSError as exc:
                stats.errors["save"] += 1
                error = f"save: {exc.strerror or exc}"
                self.emit("save_err", url=item.url, file=name, error=error)
                name = None
            else:
                stats.saved += 1
                self.emit("save", url=item.url, file=name, bytes=len(body))
        self._record(item, result, file=name, error=error, size=len(body))
        return error

    # -- links --------------------------------------------------------------------------------

    def _links(self, body: bytes, content_type: str) -> PageLinks:
        text, _codec = decode_html(body, content_type)
        return extract_links(text)

    async def _follow_links(self, item: QueuedURL, page_url: str, links: PageLinks) -> None:
        depth = item.depth + 1
        limit = self.config.max_depth
        if limit != -1 and depth > limit:
            self.emit("skip_links", url=item.url, reason=f"depth limit {limit} reached")
            return
        if links.nofollow:
            self.emit("skip_links", url=item.url, reason="meta robots nofollow")
            return
        base = page_url
        if links.base:
            resolved_base = self.resolver.resolve(page_url, [links.base]).get(links.base)
            base = resolved_base or page_url
        for url in self.resolver.resolve(base, links.nofollow_hrefs).values():
            if url is not None and not self.frontier.seen(url):
                self.skip_link(item.url, url, "nofollow")
        accepted: list[tuple[str, int]] = []
        check = self.frontier.check
        site = self.site_of(item.host)
        for url in self.resolver.resolve(base, links.hrefs).values():
            if url is None:
                continue
            reason = check(url)
            if reason is None:
                reason = self.scope(url, site)
            if reason is None:
                accepted.append((url, depth))
            elif reason != "duplicate":
                self.skip_link(item.url, url, reason)
        await self.frontier.push(item, accepted)
        self.stats.queued = self.frontier.queued

    def skip_link(self, page: str, url: str, reason: str) -> None:
        """Count and log (once) a link of `page` that is not followed."""
        key = hash(url)
        if key in self._skipped_links:
            return
        if len(self._skipped_links) >= _SKIP_MEMORY:
            self._skipped_links.clear()
        self._skipped_links.add(key)
        self.stats.skipped[reason] += 1
        self.emit("link_skip", page=page, url=url, reason=reason)

    # -- manifest -----------------------------------------------------------------------------

    def _record(
        self,
        item: QueuedURL,
        result: FetchResult | None,
        *,
        file: str | None,
        error: str | None,
        size: int = 0,
        elapsed_ms: int | None = None,
    ) -> None:
        record: dict[str, Any] = {
            "url": item.url,
            "final_url": result.final_url if result else None,
            "status": result.status if result else None,
            "content_type": result.content_type if result else None,
            "bytes": size,
            "depth": item.depth,
            "file": file,
            "error": error,
            "fetched_at": _now_iso(),
            "elapsed_ms": result.elapsed_ms if result else elapsed_ms,
            "etag": result.etag if result else None,
            "last_modified": result.last_modified if result else None,
        }
        if self.worker is not None:
            record["worker"] = self.worker
        self.storage.record(record)
