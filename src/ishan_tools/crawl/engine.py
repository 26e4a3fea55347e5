"""`Crawler`: a fixed pool of asyncio workers pulling URLs from the frontier.

A worker asks for the next URL whose host may be fetched now (free slot, delay elapsed,
robots.txt loaded, circuit not open), fetches it and hands the outcome to the page handler.
No task is created per URL, so memory does not grow with the site. Limits (--max-pages,
--max-bytes, --max-time) stop the hand-out; what is queued stays in the frontier log for
--resume. Cancellation (Ctrl-C) closes the files cleanly and is re-raised.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any

import httpx

from ishan_tools.breaker import CircuitState
from ishan_tools.crawl.config import CrawlConfig
from ishan_tools.crawl.events import CrawlStats, Event, EventSink, null_sink
from ishan_tools.crawl.fetch import Fetcher, FetchFailed, HostPaused
from ishan_tools.crawl.frontier import Frontier, QueuedURL
from ishan_tools.crawl.hosts import HostState, fetch_text
from ishan_tools.crawl.pages import PageHandler
from ishan_tools.crawl.sitemap import parse_sitemap
from ishan_tools.crawl.storage import Storage
from ishan_tools.crawl.urls import normalize, parse_seed
from ishan_tools.errors import CrawlError

__all__ = ["CrawlResult", "Crawler"]

_MAX_SITEMAPS = 50


class CrawlResult(dict[str, Any]):
    """The fields of the final `summary` event (pages, saved, bytes, errors, stop_reason...)."""


class Crawler:
    """Crawl one site as `config` says; `client`/`transport` and `sink` are injectable."""

    def __init__(
        self,
        config: CrawlConfig,
        *,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sink: EventSink = null_sink,
    ) -> None:
        self.config = config
        self.seed = parse_seed(config.seed, sort_query=config.sort_query)
        self.sink = sink
        self.stats = CrawlStats()
        self.storage = Storage(config.out_dir, warc=config.warc)
        self.root_host = self.seed.split("/", 3)[2]
        self.frontier = Frontier(
            self.storage,
            memory_cap=config.memory_queue,
            max_url_length=config.max_url_length,
            max_query_variants=config.max_query_variants,
        )
        self.hosts: dict[str, HostState] = {}
        self._client = client
        self._transport = transport
        self._changed = asyncio.Event()
        self._dispatched = 0
        self._stop_reason: str | None = None
        self._seed_error: str | None = None

    # -- events -------------------------------------------------------------------------------

    def emit(self, name: str, **fields: Any) -> None:
        self.sink(Event(name, time.time(), fields))

    def _on_event(self, name: str, fields: dict[str, object]) -> None:
        if name == "retry":
            self.stats.retries += 1
        self.emit(name, **fields)

    def _on_breaker(self, host: str, old: CircuitState, new: CircuitState) -> None:
        name = "breaker_open" if new is CircuitState.OPEN else "breaker_" + new.value
        self.emit(name, host=host, previous=old.value)
        self._changed.set()

    # -- scope --------------------------------------------------------------------------------

    def scope(self, url: str) -> str | None:
        """Why a URL is outside the crawl ('other_host', 'excluded'), or None."""
        host = self.frontier.host_of(url)
        if host != self.root_host and not (
            self.config.allow_subdomains and host.endswith("." + self.root_host)
        ):
            return "other_host"
        if not self.config.wants_url(url):
            return "excluded"
        return None

    def _claim_redirect(self, source: str, url: str) -> str | None:
        """Claim a redirect target of a fetch of `source` (mark it seen) and return None, or
        return why it is refused. A first redirect of the seed to another host moves the crawl
        there first."""
        if self.frontier.seen(url):
            return "duplicate"
        if source == self.seed and self.stats.fetched == 0 and self.scope(url) == "other_host":
            self._move_root_host(url)
        reason = self._redirect_refusal(url)
        if reason is None:
            self.frontier.mark_seen(url)
        return reason

    def _redirect_refusal(self, url: str) -> str | None:
        """Why a redirect target must not be followed ('other_host', 'excluded', 'robots')."""
        reason = self.scope(url)
        if reason is None and not self._host(url).allowed(url):
            reason = "robots"
        return reason

    def _move_root_host(self, url: str) -> None:
        """The seed moved (example.com -> www.example.com): the site is where it landed."""
        self._set_root_host(self.frontier.host_of(url))
        self.storage.write_state({"seed": self.seed, "root_host": self.root_host})
        self.emit("seed_moved", url=url, host=self.root_host)

    def _set_root_host(self, key: str) -> None:
        self.root_host = key

    def _host(self, url: str) -> HostState:
        key = self.frontier.host_of(url)
        host = self.hosts.get(key)
        if host is None:
            origin = url.split("/", 3)
            host = HostState(key, f"{origin[0]}//{origin[2]}", self.config, self._on_breaker)
            self.hosts[key] = host
        return host

    # -- running ------------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Stop handing out URLs (requests in flight finish); the crawl stays resumable."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._changed.set()

    async def run(self) -> CrawlResult:
        """Crawl until the frontier is empty or a limit is hit; returns the summary.

        Raises CrawlError when the seed cannot be fetched or the out dir cannot be written,
        UsageError for an out dir that holds another crawl.
        """
        config = self.config
        previous, resuming = self._open_storage()
        self.pages = PageHandler(
            config,
            self.frontier,
            self.storage,
            self.stats,
            self.emit,
            self.scope,
            previous if config.refresh else {},
        )
        self.client = self._client or httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(config.timeout),
            limits=httpx.Limits(
                max_connections=config.concurrency, max_keepalive_connections=config.concurrency
            ),
            follow_redirects=False,
        )
        self.fetcher = Fetcher(self.client, config, self._claim_redirect, self._on_event)
        stop_reason = "error"
        try:
            await self._crawl(previous, resuming=resuming)
            stop_reason = self._stop_reason or "complete"
        except asyncio.CancelledError:
            stop_reason = "interrupted"
            raise
        except OSError as exc:
            stop_reason = "error"
            raise CrawlError(
                f"cannot write to {config.out_dir} ({exc.strerror or exc}); "
                "pages saved so far are kept: free space or fix it, then use --resume"
            ) from exc
        finally:
            self.storage.close()
            if self._client is None:
                await self.client.aclose()
            self.stats.queued = len(self.frontier)
            summary = CrawlResult(self.stats.summary(stop_reason))
            self.emit("summary", seed=self.seed, out_dir=str(config.out_dir), **summary)
        if self._seed_error is not None:
            raise CrawlError(f"cannot fetch the seed {self.seed}: {self._seed_error}")
        return summary

    def _open_storage(self) -> tuple[dict[str, dict[str, Any]], bool]:
        """Check and open the out dir; returns the previous manifest and whether to resume."""
        config = self.config
        state = self.storage.prepare(
            seed=self.seed, resume=config.resume, overwrite=config.overwrite, refresh=config.refresh
        )
        if isinstance(state.get("root_host"), str):
            self._set_root_host(state["root_host"])
        previous: dict[str, dict[str, Any]] = {}
        if config.resume or config.refresh:
            for record in self.storage.manifest_records():
                if isinstance(record.get("url"), str):
                    previous[record["url"]] = record
        resuming = config.resume and self.storage.frontier_path.exists()
        self.storage.open(fresh_run=not resuming)
        return previous, resuming

    async def _crawl(self, previous: dict[str, dict[str, Any]], *, resuming: bool) -> None:
        """Seed or restore the frontier, then run the workers, all within --max-time."""
        workers: list[asyncio.Task[None]] = []
        try:
            async with asyncio.timeout(self.config.max_time or None):
                await self._start(previous, resuming=resuming)
                workers = [
                    asyncio.create_task(self._worker()) for _ in range(self.config.concurrency)
                ]
                await asyncio.gather(*workers)
        except TimeoutError:
            self._stop_reason = "max_time"
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _start(self, previous: dict[str, dict[str, Any]], *, resuming: bool) -> None:
        """Queue the seed (and sitemap URLs), or restore the frontier of a stopped crawl."""
        seed_host = self._host(self.seed)
        await self._load_robots(seed_host)
        if resuming:
            failed = {url for url, rec in previous.items() if rec.get("error")}
            done = set(previous) - failed if self.config.retry_failed else set(previous)
            pending = self.frontier.restore(self.storage.frontier_from(0), done)
            self.emit("resume", done=len(done), pending=pending)
            if pending or done:
                return
        self.emit("seed", url=self.seed, depth=0)
        if seed_host.allowed(self.seed):
            self.frontier.push_new([(self.seed, 0)])
        else:
            self.emit("robots_skip", url=self.seed)
        if self.config.sitemap:
            await self._seed_from_sitemaps(seed_host)

    async def _seed_from_sitemaps(self, host: HostState) -> None:
        pending = host.sitemaps() or [host.origin + "/sitemap.xml"]
        seen: set[str] = set()
        found: list[tuple[str, int]] = []
        while pending and len(seen) < _MAX_SITEMAPS:
            sitemap_url = pending.pop(0)
            if sitemap_url in seen:
                continue
            seen.add(sitemap_url)
            try:
                status, text = await fetch_text(
                    self.client,
                    sitemap_url,
                    self.fetcher.headers,
                    timeout=self.config.timeout,
                    limit=self.config.max_page_bytes,
                )
            except (httpx.HTTPError, TimeoutError, zlib.error) as exc:
                self.emit("fetch_err", url=sitemap_url, kind="sitemap", error=str(exc))
                continue
            if status != 200:
                self.emit("fetch_err", url=sitemap_url, kind="sitemap", error=f"HTTP {status}")
                continue
            urls, is_index = parse_sitemap(text)
            if is_index:
                pending.extend(urls)
                continue
            for raw in urls:
                url = normalize(raw, sort_query=self.config.sort_query)
                if url is None or self.frontier.check(url) is not None:
                    continue
                if self.scope(url) is None:
                    found.append((url, 0))
        self.frontier.push_new(found)
        self.emit("sitemap", sitemaps=len(seen), urls=len(found))

    async def _load_robots(self, host: HostState) -> None:
        if host.robots_ready:
            return
        event = await host.load_robots(self.client, self.fetcher.headers)
        if event is not None:
            self.emit(event[0], **event[1])
        self._changed.set()

    async def _worker(self) -> None:
        while True:
            item = await self._next_item()
            if item is None:
                return
            host = self.hosts[item.host]
            try:
                await self._crawl_one(item, host)
            finally:
                host.done()
                self.stats.in_flight -= 1
                self._changed.set()

    async def _next_item(self) -> QueuedURL | None:
        """The next URL a worker may fetch now, waiting as politeness requires; None: done."""
        while True:
            self._changed.clear()
            if self._stop_reason is None:
                self._stop_reason = self._limit_reached()
            if self._stop_reason is not None:
                self._changed.set()
                return None
            now = time.monotonic()
            best: QueuedURL | None = None
            wake: float | None = None
            for key, queue in self.frontier.queues.items():
                if not queue or (best is not None and queue[0] > best):
                    continue
                wait = self.hosts[key].wait_time(now) if key in self.hosts else 0.0
                if wait == 0.0:
                    best = queue[0]
                elif wait is not None:
                    wake = wait if wake is None else min(wake, wait)
            if best is not None:
                item = self.frontier.pop(best.host)
                self._host(item.url).start(now)
                self._dispatched += 1
                self.stats.in_flight += 1
                self.stats.queued = len(self.frontier)
                return item
            if self.stats.in_flight == 0 and wake is None:
                return None
            try:
                async with asyncio.timeout(wake):
                    await self._changed.wait()
            except TimeoutError:
                pass

    def _limit_reached(self) -> str | None:
        """The limit that stops the crawl now ('max_pages', 'max_bytes'), or None."""
        config = self.config
        if config.max_pages and self._dispatched >= config.max_pages:
            return "max_pages"
        if config.max_bytes and self.stats.bytes >= config.max_bytes:
            return "max_bytes"
        return None

    async def _crawl_one(self, item: QueuedURL, host: HostState) -> None:
        if not host.robots_ready:
            await self._load_robots(host)
        if not host.allowed(item.url):
            self.stats.skipped["robots"] += 1
            self._dispatched -= 1
            self.emit("robots_skip", url=item.url, depth=item.depth)
            self.frontier.finish(item.url)
            return
        self.emit("fetch", url=item.url, depth=item.depth)
        started = time.monotonic()
        followed = item.followed if item.followed is not None else set()
        try:
            result = await self.fetcher.fetch(
                item.url,
                host.breaker,
                attempts_done=item.attempts,
                followed=followed,
                conditional=self.pages.conditional_headers(item.url),
            )
        except HostPaused as paused:
            item.attempts, item.followed = paused.attempts, followed
            self._dispatched -= 1
            self.frontier.requeue(item)
            return
        except FetchFailed as exc:
            self.pages.failed(item, exc, int((time.monotonic() - started) * 1000))
            if item.url == self.seed:
                self._seed_error = f"{exc.kind}: {exc}"
            return
        error = self.pages.fetched(item, result)
        if item.url == self.seed and error is not None:
            self._seed_error = error
