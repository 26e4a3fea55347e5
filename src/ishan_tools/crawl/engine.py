"""`Crawler`: a fixed pool of asyncio workers pulling URLs from the frontier.

A worker asks the frontier for the next URL that may be fetched now (the frontier applies
politeness: free slot, delay elapsed, robots.txt loaded, circuit not open), fetches it and
hands the outcome to the page handler. No task is created per URL, so memory does not grow
with the site. Each start URL is its own site (see `sites`). Limits (--max-pages,
--max-bytes, --max-time) stop the hand-out; what is queued stays in the frontier (its log,
for --resume, or Redis). Cancellation (Ctrl-C) closes the files cleanly and is re-raised.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from ishan_tools.breaker import CircuitBreaker, CircuitState
from ishan_tools.crawl.config import CrawlConfig
from ishan_tools.crawl.events import CrawlStats, Event, EventSink, null_sink
from ishan_tools.crawl.fetch import Fetcher, FetchFailed, HostPaused, counts_for_breaker
from ishan_tools.crawl.frontier import Frontier, QueuedURL, Seed, Stop, Wait
from ishan_tools.crawl.hosts import HostState
from ishan_tools.crawl.local_frontier import LocalFrontier
from ishan_tools.crawl.pages import PageHandler
from ishan_tools.crawl.sitemap import read_sitemaps
from ishan_tools.crawl.sites import Sites
from ishan_tools.crawl.storage import Storage
from ishan_tools.crawl.urls import host_key, normalize
from ishan_tools.errors import CrawlError

__all__ = ["CrawlResult", "Crawler"]


class CrawlResult(dict[str, Any]):
    """The fields of the final `summary` event (pages, saved, bytes, errors, stop_reason...)."""


class Crawler:
    """Crawl the sites `config` names; `client`/`transport` and `sink` are injectable."""

    def __init__(
        self,
        config: CrawlConfig,
        *,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sink: EventSink = null_sink,
    ) -> None:
        self.config = config
        self.sites = Sites(config.start_urls, allow_subdomains=config.allow_subdomains)
        self.sink = sink
        self.stats = CrawlStats()
        self.storage = Storage(config.out_dir, warc=config.warc)
        self.frontier: Frontier = self._make_frontier()
        self.hosts: dict[str, HostState] = {}
        self._client = client
        self._transport = transport
        self._changed = asyncio.Event()
        self._stop_reason: str | None = None
        self._unsettled: set[str] = set()  # start URLs whose site may still move
        self._seed_errors: dict[str, str] = {}

    @property
    def seed(self) -> str:
        """The (first) start URL."""
        return self.sites.first

    def _make_frontier(self) -> Frontier:
        config = self.config
        if config.frontier:
            from ishan_tools.crawl.shared.frontier import RedisFrontier

            return RedisFrontier(config, emit=self.emit)
        return LocalFrontier(
            self.storage,
            memory_cap=config.memory_queue,
            max_url_length=config.max_url_length,
            max_query_variants=config.max_query_variants,
            per_host_concurrency=config.per_host_concurrency,
            delay=config.delay,
            max_pages=config.max_pages,
            max_bytes=config.max_bytes,
            retry_failed=config.retry_failed,
            gate=self._gate,
        )

    # -- events -------------------------------------------------------------------------------

    def emit(self, name: str, **fields: Any) -> None:
        self.sink(Event(name, time.time(), fields))

    def _on_event(self, name: str, fields: dict[str, object]) -> None:
        if name == "retry":
            self.stats.retries += 1
        self.emit(name, **fields)

    def _on_breaker(self, host: str, old: CircuitState, new: CircuitState) -> None:
        name = "breaker_open" if new is CircuitState.OPEN else "breaker_" + new.value
        fields: dict[str, Any] = {"host": host, "previous": old.value}
        if self.config.breaker_slow is not None and host in self.hosts:
            fields["slow_calls"] = self.hosts[host].breaker.slow_calls
        self.emit(name, **fields)
        self.stats.breaker_moved(host, new.value)
        self._changed.set()

    # -- scope --------------------------------------------------------------------------------

    def scope(self, url: str, site: str | None = None) -> str | None:
        """Why a URL found on a page of `site` (a start URL; default the first) is outside
        the crawl ('other_host', 'excluded'), or None."""
        if not self.sites.in_site(host_key(url), site or self.sites.first):
            return "other_host"
        if not self.config.wants_url(url):
            return "excluded"
        return None

    def _site_of(self, host: str) -> str:
        return self.sites.site_of(host) or self.sites.first

    async def _claim_redirect(self, source: str, url: str) -> str | None:
        """Why a redirect target must not be followed, or None (it is then claimed as seen)."""
        if await self.frontier.redirect_seen(source, url):
            return "duplicate"
        site = self._site_of(host_key(source))
        if source == site and source in self._unsettled and self.scope(url, site) == "other_host":
            # The start URL moved (example.com -> www.example.com): the site is where it landed.
            self.sites.set_root(site, host_key(url))
            await self.frontier.move_site(site, host_key(url))
            self.storage.write_state(self._state())
            self.emit("seed_moved", url=url, host=host_key(url))
        reason = self.scope(url, site)
        if reason is None and not self._host(url).allowed(url):
            reason = "robots"
        if reason is None and not await self.frontier.claim_redirect(source, url):
            reason = "duplicate"
        return reason

    def _state(self) -> dict[str, Any]:
        shared = self.config.crawl_id if self.config.frontier else None
        return Storage.state_for(self.sites.urls, self.sites.roots, crawl_id=shared)

    def _host(self, url: str) -> HostState:
        key = host_key(url)
        host = self.hosts.get(key)
        if host is None:
            origin = url.split("/", 3)
            config = self.config
            breaker = CircuitBreaker(
                failure_threshold=config.breaker_threshold,
                recovery_timeout=config.breaker_cooldown,
                failure_predicate=counts_for_breaker,
                name=key,
                on_state_change=lambda old, new: self._on_breaker(key, old, new),
                store=self.frontier.breaker_store(key),
                # --breaker-slow: the last --breaker-threshold fetches all slow pause the host.
                slow_call_duration=config.breaker_slow,
                sliding_window_size=config.breaker_threshold,
                minimum_calls=config.breaker_threshold,
            )
            host = HostState(key, f"{origin[0]}//{origin[2]}", self.config, breaker)
            self.hosts[key] = host
        return host

    def _gate(self, key: str, active: int) -> float | None:
        host = self.hosts.get(key)
        return 0.0 if host is None else host.gate(active)

    # -- running ------------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Stop handing out URLs (requests in flight finish); the crawl stays resumable."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._changed.set()

    async def run(self) -> CrawlResult:
        """Crawl until the frontier is empty or a limit is hit; returns the summary.

        Raises CrawlError when no start URL can be fetched, the out dir cannot be written or a
        shared frontier stays unreachable; UsageError for an out dir that holds another crawl
        or a shared crawl started with other options.
        """
        config = self.config
        try:
            await self.frontier.join(self.sites)
            previous, resuming = self._open_storage()
        except BaseException:
            await self.frontier.close()
            raise
        self._unsettled = set(self.sites.urls)
        self.pages = PageHandler(
            config,
            self.frontier,
            self.storage,
            self.stats,
            self.emit,
            self.scope,
            previous if config.refresh else {},
            site_of=self._site_of,
            worker=config.worker_id if config.frontier else None,
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
            await self._crawl(previous if resuming else None)
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
            await self.frontier.close()
            self.storage.close()
            if self._client is None:
                await self.client.aclose()
            self.stats.queued = self.frontier.queued
            summary = CrawlResult(self.stats.summary(stop_reason))
            self.emit("summary", **self._identity(), **summary)
        self._raise_if_no_site_started()
        return summary

    def _identity(self) -> dict[str, Any]:
        """The summary's first fields: what was crawled, where it went, by which worker."""
        fields: dict[str, Any] = {"seed": self.sites.first if self.sites.urls else None}
        if len(self.sites.urls) > 1:
            fields["seeds"] = self.sites.urls
        fields["out_dir"] = str(self.config.out_dir)
        if self.config.frontier:
            fields["crawl_id"] = self.config.crawl_id
            fields["worker"] = self.config.worker_id
        return fields

    def _raise_if_no_site_started(self) -> None:
        """CrawlError when this process fetched every start URL and each one failed."""
        errors = self._seed_errors
        if not errors or len(errors) < len(self.sites.urls):
            return
        if len(errors) == 1:
            seed, error = next(iter(errors.items()))
            raise CrawlError(f"cannot fetch the seed {seed}: {error}")
        seed, error = next(iter(errors.items()))
        raise CrawlError(
            f"cannot fetch any of the {len(errors)} start URLs: {seed}: {error} (and the "
            "others: see the fetch_err events)"
        )

    def _open_storage(self) -> tuple[dict[str, dict[str, Any]], bool]:
        """Check and open the out dir; returns the previous manifest and whether to resume."""
        config = self.config
        shared = config.crawl_id if config.frontier else None
        state = self.storage.prepare(
            seeds=self.sites.urls,
            resume=config.resume,
            overwrite=config.overwrite,
            refresh=config.refresh,
            crawl_id=shared,
        )
        if isinstance(state.get("root_host"), str) and self.sites.urls:
            self.sites.set_root(self.sites.first, state["root_host"])
        for seed, root in (state.get("root_hosts") or {}).items():
            if seed in self.sites.roots and isinstance(root, str):
                self.sites.set_root(seed, root)
        previous: dict[str, dict[str, Any]] = {}
        if config.resume or config.refresh:
            for record in self.storage.manifest_records():
                if isinstance(record.get("url"), str):
                    previous[record["url"]] = record
        resuming = config.resume and self.storage.frontier_path.exists()
        self.storage.open(fresh_run=not (resuming or shared), frontier_log=shared is None)
        return previous, resuming

    async def _crawl(self, previous: dict[str, dict[str, Any]] | None) -> None:
        """Open the frontier, seed it when this process is first, then run the workers, all
        within --max-time (of the whole crawl, for a shared frontier)."""
        workers: list[asyncio.Task[None]] = []
        try:
            async with asyncio.timeout(self.config.max_time or None) as deadline:
                seed_it, restored = await self.frontier.open(self.sites, previous)
                left = self.frontier.time_left()
                if left is not None:
                    deadline.reschedule(asyncio.get_running_loop().time() + max(0.0, left))
                if seed_it or restored is not None:
                    await self._load_start_robots()
                if restored is not None:
                    self.emit("resume", **restored)
                if seed_it:
                    await self._seed()
                    await self.frontier.seeded()
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

    async def _load_start_robots(self) -> None:
        """robots.txt of every start URL's host, a few at a time."""
        limit = asyncio.Semaphore(self.config.concurrency)

        async def load(url: str) -> None:
            async with limit:
                await self._load_robots(self._host(url))

        await asyncio.gather(*(load(url) for url in self.sites.urls))

    async def _seed(self) -> None:
        """Queue the start URLs (and the URLs of their sitemaps)."""
        for seed in self.sites.urls:
            host = self._host(seed)
            self.emit("seed", url=seed, depth=0)
            if host.allowed(seed):
                await self.frontier.push(None, [(seed, 0)])
            else:
                self.emit("robots_skip", url=seed)
            if self.config.sitemap:
                await self._seed_from_sitemaps(host, seed)

    async def _seed_from_sitemaps(self, host: HostState, site: str) -> None:
        read, urls = await read_sitemaps(
            self.client,
            host.sitemaps() or [host.origin + "/sitemap.xml"],
            self.fetcher.headers,
            timeout=self.config.timeout,
            limit=self.config.max_page_bytes,
            emit=self.emit,
        )
        found: list[tuple[str, int]] = []
        for raw in urls:
            url = normalize(raw, sort_query=self.config.sort_query)
            if url is None or self.frontier.check(url) is not None:
                continue
            if self.scope(url, site) is None:
                found.append((url, 0))
        await self.frontier.push(None, found)
        self.emit("sitemap", sitemaps=read, urls=len(found))

    async def _load_robots(self, host: HostState) -> None:
        if host.robots_ready:
            return
        event = await host.load_robots(self.client, self.fetcher.headers, self.frontier)
        if event is not None:
            self.emit(event[0], **event[1])
        self._changed.set()

    async def _worker(self) -> None:
        while True:
            item = await self._next_item()
            if item is None:
                return
            try:
                await self._crawl_one(item)
            finally:
                self.stats.in_flight -= 1
                self._changed.set()

    async def _next_item(self) -> QueuedURL | None:
        """The next URL a worker may fetch now, waiting as politeness requires; None: done."""
        while True:
            self._changed.clear()
            if self._stop_reason is not None:
                self._changed.set()
                return None
            answer = await self.frontier.claim()
            if isinstance(answer, Stop):
                if answer.reason != "complete" and self._stop_reason is None:
                    self._stop_reason = answer.reason
                self._changed.set()
                return None
            if isinstance(answer, Seed):  # a shared crawl's first seeder went away
                await self._load_start_robots()
                await self._seed()
                await self.frontier.seeded()
                continue
            if isinstance(answer, Wait):
                try:
                    async with asyncio.timeout(answer.seconds):
                        await self._changed.wait()
                except TimeoutError:
                    pass
                continue
            self.stats.in_flight += 1
            self.stats.queued = self.frontier.queued
            return answer

    async def _crawl_one(self, item: QueuedURL) -> None:
        host = self._host(item.url)
        if not host.robots_ready:
            await self._load_robots(host)
        if not host.allowed(item.url):
            self.stats.skipped["robots"] += 1
            self.emit("robots_skip", url=item.url, depth=item.depth)
            await self._finish(item, "skipped")
            return
        if self.sites.site_of(item.host) is None:  # another worker moved a site
            for seed, root in (await self.frontier.site_roots()).items():
                self.sites.set_root(seed, root)
        await self.frontier.starting(item)
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
            await self.frontier.release(item)
            return
        except FetchFailed as exc:
            self.pages.failed(item, exc, int((time.monotonic() - started) * 1000))
            self._start_url_done(item.url, f"{exc.kind}: {exc}")
            await self._finish(item, "failed")
            return
        error = await self.pages.fetched(item, result)
        self._start_url_done(item.url, error)
        await self._finish(item, "done" if error is None else "failed")

    def _start_url_done(self, url: str, error: str | None) -> None:
        if url in self._unsettled:
            self._unsettled.discard(url)
            if error is not None:
                self._seed_errors[url] = error

    async def _finish(self, item: QueuedURL, outcome: str) -> None:
        for url, reason in await self.frontier.done(item, outcome):
            self.pages.skip_link(item.url, url, reason)
