"""`RedisFrontier`: one crawl shared by any number of worker processes, through Redis.

- Joining: the first worker stores the crawl's options; a worker with other options is
  refused with one line naming them. Whoever finds the crawl unseeded seeds it.
- Leases: `claim` takes a URL under a lease (a deadline, renewed every --heartbeat while the
  fetch runs); `done` acknowledges it and queues its page's links in the same script. A
  lease that expires (its worker died) is put back by the next claim of any worker, so
  nothing is lost and fetching is at least once; an acknowledged URL is never handed out
  again, even when the acknowledgement comes after its lease expired. Each claim carries a
  token: an acknowledgement whose URL another worker claimed since is refused (fenced; event
  `ack_refused`); one whose lease expired but nobody took the URL since counts (`ack_late`);
  a retried acknowledgement whose first reply was lost is known as a repeat (no event).
- Politeness and limits are the scripts': per-host slots and delays, the host's circuit, the
  crawl-wide --max-pages/--max-bytes/--max-time, all on Redis' clock.
- The end: no URL queued and no lease live (and the crawl seeded) -> `Stop('complete')`.
- Redis trouble: every call retries with backoff while the server is away (the worker
  pauses; nothing it holds is lost) and raises CrawlError after --frontier-timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis

from ishan_tools.breaker.store import BreakerRules, StoreFactory
from ishan_tools.crawl.config import CrawlConfig, option_differences
from ishan_tools.crawl.events import Emit
from ishan_tools.crawl.frontier import QueuedURL, RobotsAnswer, Seed, Stop, Wait
from ishan_tools.crawl.shared.dedupe import INTSET_LOAD_SHARE
from ishan_tools.crawl.shared.keys import CrawlKeys, frontier_retry, stable_hash
from ishan_tools.crawl.shared.scripts import SCRIPTS
from ishan_tools.crawl.sites import Sites
from ishan_tools.errors import CrawlError, UsageError
from ishan_tools.stores.breaker import RedisBreakerStore
from ishan_tools.stores.client import async_client, register_scripts

__all__ = ["RedisFrontier"]

T = TypeVar("T")

_POLL_MIN = 0.02  # seconds between claims while nothing is claimable, doubling...
_POLL_MAX = 0.5  # ...up to this
_SEEN_CACHE = 2_000_000  # URL hashes this process remembers as queued (then forgets all)
_ROBOTS_WAIT = 0.1


class RedisFrontier:
    """The frontier of the shared crawl `config.crawl_id` at `config.frontier`."""

    def __init__(self, config: CrawlConfig, *, emit: Emit) -> None:
        assert config.frontier and config.crawl_id and config.worker_id
        self.config = config
        self.emit = emit
        self.url = config.frontier
        self.worker = config.worker_id
        self.keys = CrawlKeys(config.crawl_id)
        self.client = async_client(self.url, min(5.0, max(0.5, config.frontier_timeout / 3)))
        # every Redis call goes through it: retried while Redis is away, up to a limit
        self._call = frontier_retry(self.url, config.frontier_timeout, emit)
        self._scripts = register_scripts(self.client, SCRIPTS)
        self._lease_ms = int(config.lease * 1000)
        # a counted acknowledgement is known for as long as a retry of it can come (the
        # first reply lost to a partition): a retry is then not taken for a fenced one
        self._remember_ack_ms = int((config.frontier_timeout + 2 * config.lease) * 1000)
        self._queued = 0
        self._held: dict[str, QueuedURL] = {}  # URL -> the item this worker holds a lease on
        self._found: dict[str, list[tuple[str, int]]] = {}  # URL -> links its page queued
        self._seen: set[int] = set()  # Python hashes of URLs known to be queued
        self._idle_until = 0.0
        self._claiming = asyncio.Lock()
        self._poll = _POLL_MIN
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing = False
        self._deadline_s: float | None = None
        self._breakers: dict[str, RedisBreakerStore] = {}
        self._created = False
        self._delayed: dict[str, bool] = {}  # host -> it has a delay between requests

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def leases_held(self) -> int:
        """URLs this worker holds a lease on now."""
        return len(self._held)

    async def _run(self, name: str, *args: Any) -> Any:
        return await self._call(self._scripts[name], [], [self.keys.prefix, *args])

    # -- joining and leaving ----------------------------------------------------------------

    async def join(self, sites: Sites) -> None:
        config = self.config
        if not sites.urls and not await self._call(self.client.exists, self.keys.opts):
            raise UsageError(
                f"there is no crawl {config.crawl_id} at {self.url} to join: pass its start "
                "URLs to start it"
            )
        mine = {"urls": sorted(sites.urls), "options": config.shared_options()}
        load = await self._intset_load()
        created, stored = await self._run(
            "create",
            json.dumps(mine, sort_keys=True),
            config.per_host_concurrency,
            int(config.obey_robots),
            int(config.delay * 1000),
            int(config.breaker_cooldown * 1000),
            config.max_pages,
            config.max_bytes,
            int(config.max_time * 1000),
            load,
        )
        theirs = json.loads(stored)
        if not created:
            self._refuse_other_options(theirs, mine, given_urls=bool(sites.urls))
        if not sites.urls:
            sites.adopt(theirs["urls"])
        for seed, root in (await self.site_roots()).items():
            sites.set_root(seed, root)
        self._created = bool(created)

    async def open(
        self, sites: Sites, previous: dict[str, dict[str, Any]] | None
    ) -> tuple[bool, dict[str, int] | None]:
        config = self.config
        await self._renew()
        if config.max_time:
            started, now = await self._call(self._started_and_now)
            self._deadline_s = (started + config.max_time * 1000 - now) / 1000
        self._heartbeat = asyncio.create_task(self._beat())
        seed_it = bool(await self._run("begin_seeding", self.worker, self._lease_ms))
        self.emit(
            "join",
            frontier=self.url,
            crawl_id=config.crawl_id,
            worker=self.worker,
            created=self._created,
            seeding=seed_it,
        )
        return seed_it, None

    async def _intset_load(self) -> int:
        """URLs per dedupe bucket, so that buckets stay compact intsets on this server."""
        try:
            reply = await self._call(self.client.config_get, "set-max-intset-entries")
            entries = int(reply.get("set-max-intset-entries") or 512)
        except redis.ResponseError:  # CONFIG may be disabled (managed Redis): the default
            entries = 512
        return max(8, int(entries * INTSET_LOAD_SHARE))

    async def _started_and_now(self) -> tuple[int, int]:
        started = int(await self.client.hget(self.keys.meta, "started") or 0)
        seconds, micros = await self.client.time()
        return started, int(seconds) * 1000 + int(micros) // 1000

    def _refuse_other_options(
        self, theirs: dict[str, Any], mine: dict[str, Any], *, given_urls: bool
    ) -> None:
        differences = []
        if given_urls and theirs["urls"] != mine["urls"]:
            differences.append(f"start URLs {', '.join(theirs['urls'])}")
        differences += option_differences(theirs["options"], mine["options"])
        if differences:
            raise UsageError(
                f"crawl {self.config.crawl_id} at {self.url} was started with "
                f"{'; '.join(differences)}: join it with the same options, or pick another "
                "--crawl-id"
            )

    async def seeded(self) -> None:
        await self._run("end_seeding", self.worker)

    def time_left(self) -> float | None:
        return self._deadline_s

    async def close(self) -> None:
        """Stop the heartbeat, put back what this worker still holds, leave, disconnect."""
        self._closing = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._heartbeat
        if self._call.failure is None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(min(5.0, self.config.frontier_timeout)):
                    for item in list(self._held.values()):
                        await self._scripts["release"](
                            [], [self.keys.prefix, self.worker, *self._lease_of(item)]
                        )
                    await self._scripts["leave"]([], [self.keys.prefix, self.worker])
        self._held.clear()
        with contextlib.suppress(Exception):
            await self.client.aclose()

    # -- heartbeat --------------------------------------------------------------------------

    async def _beat(self) -> None:
        while not self._closing:  # not only the cancel: redis-py may swallow one mid-call
            await asyncio.sleep(self.config.heartbeat)
            try:
                lost = await self._renew()
            except CrawlError:
                return  # the next claim raises it
            for url in lost:
                if self._held.pop(url, None) is not None:
                    self.emit("lease_lost", url=url)

    async def _renew(self) -> list[str]:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "out_dir": str(self.config.out_dir),
            "lease_s": self.config.lease,
        }
        pairs = [part for item in self._held.values() for part in (item.url, item.token)]
        lost: list[str] = await self._run(
            "renew", self.worker, self._lease_ms, json.dumps(info), *pairs
        )
        return lost

    # -- adding URLs ------------------------------------------------------------------------

    def seen(self, url: str) -> bool:
        return hash(url) in self._seen

    def check(self, url: str) -> str | None:
        if hash(url) in self._seen:
            return "duplicate"
        if len(url) > self.config.max_url_length:
            return "url_too_long"
        return None  # query traps are counted crawl-wide, when the links are queued

    def mark_seen(self, url: str) -> None:
        self._remember(url)

    def _remember(self, url: str) -> None:
        if len(self._seen) >= _SEEN_CACHE:
            self._seen.clear()
        self._seen.add(hash(url))

    async def push(self, item: QueuedURL | None, entries: list[tuple[str, int]]) -> None:
        if item is not None:
            self._found.setdefault(item.url, []).extend(entries)
            return
        for batch in _batches(entries):
            await self._run("push", self.config.max_query_variants, *self._entries(batch))

    def _entries(self, entries: list[tuple[str, int]]) -> list[str]:
        """The script arguments for (url, depth) pairs, one string each (redis-py encodes
        every argument on its own): depth, URL hash, hash of the path of a query URL, URL."""
        args = []
        for url, depth in entries:
            self._remember(url)
            question = url.find("?")
            query_path = str(stable_hash(url[:question])) if question != -1 else ""
            args.append(f"{depth}\t{stable_hash(url)}\t{query_path}\t{url}")
        return args

    async def redirect_seen(self, source: str, target: str) -> bool:
        return bool(await self._run("redirect_seen", str(stable_hash(target)), target, source))

    async def claim_redirect(self, source: str, target: str) -> bool:
        claimed = bool(await self._run("claim_redirect", str(stable_hash(target)), target, source))
        self._remember(target)
        return claimed

    # -- taking URLs ------------------------------------------------------------------------

    async def claim(self) -> QueuedURL | Wait | Stop | Seed:
        if self._call.failure is not None:
            raise self._call.failure
        async with self._claiming:  # one claim in flight: idle tasks share its answer
            now = time.monotonic()
            if now < self._idle_until:
                return Wait(self._idle_until - now)
            reply = await self._run("claim", self.worker, self._lease_ms)
            return self._claimed(reply, now)

    def _claimed(self, reply: list[Any], now: float) -> QueuedURL | Wait | Stop | Seed:
        kind = reply[0]
        if kind == "url":
            url, depth, token, host, state, failures, queued, reaped, delay = reply[1:]
            self._queued = int(queued)
            self._poll = _POLL_MIN
            self._reaped(int(reaped))
            item = QueuedURL(int(depth), 0, url, host, token=str(token))
            self._held[url] = item
            self._delayed[host] = int(delay) > 0
            store = self._breakers.get(host)
            if store is not None:
                store.observe(state, int(failures))
            return item
        if kind == "wait":
            wake, expiry, queued, reaped = (int(part) for part in reply[1:])
            self._queued = queued
            self._reaped(reaped)
            pause = self._poll
            for due in (wake, expiry):
                if due >= 0:
                    pause = min(pause, due / 1000 + 0.001)
            self._poll = min(self._poll * 2, _POLL_MAX)
            self._idle_until = now + pause
            return Wait(pause)
        if kind == "seed":
            return Seed()
        if kind == "stop":
            return Stop(reply[1])
        self._queued = 0
        return Stop("complete")

    async def starting(self, item: QueuedURL) -> None:
        if self._delayed.get(item.host):
            await self._run("started", item.host)

    def _reaped(self, count: int) -> None:
        if count:
            self.emit("requeued", urls=count, reason="lease expired")

    def _lease_of(self, item: QueuedURL) -> list[str | int]:
        return [item.url, item.token, item.host, item.depth]

    async def done(self, item: QueuedURL, outcome: str) -> list[tuple[str, str]]:
        """Acknowledge `item` with the last batch of its page's links; earlier batches (a page
        with thousands) go first, on their own: a repeat after a death only finds them known."""
        *first, last = _batches(self._found.pop(item.url, [])) or [[]]
        maxqv = self.config.max_query_variants
        refused = []
        for batch in first:
            refused += _refused(batch, await self._run("push", maxqv, *self._entries(batch)))
        reply = await self._run(
            "ack",
            self.worker,
            item.url,
            item.token,
            item.host,
            outcome,
            item.size,
            maxqv,
            self._remember_ack_ms,
            *self._entries(last),
        )
        self._held.pop(item.url, None)
        self._idle_until = 0.0
        if reply[0] == 0:  # fenced: its lease expired and another worker took the URL
            self.emit("ack_refused", url=item.url, reason="another worker holds or did it")
        elif reply[0] == 2:
            self.emit("ack_late", url=item.url)
        return refused + _refused(last, reply[1:])

    async def release(self, item: QueuedURL) -> None:
        self._found.pop(item.url, None)
        await self._run("release", self.worker, *self._lease_of(item))
        self._held.pop(item.url, None)
        self._idle_until = 0.0

    # -- per-host state ---------------------------------------------------------------------

    def breaker_store(self, host: str) -> StoreFactory:
        """The host's breaker state in Redis, kept here by host too: claims renew its view."""

        def build(rules: BreakerRules, clock: Callable[[], float]) -> RedisBreakerStore:
            store = RedisBreakerStore(
                rules,
                clock,
                key=self.keys.breaker(host),
                async_client=self.client,
                trial_ttl=self.config.timeout + self.config.lease,  # a dead trial's slot returns
                retrying=self._call,
            )
            self._breakers[host] = store
            return store

        return build

    async def robots(self, host: str, fetch: Callable[[], Awaitable[RobotsAnswer]]) -> RobotsAnswer:
        """From the crawl's cache; else fetched by the one worker that takes the lock."""
        lock = self.keys.robots_lock(host)
        hold_ms = int((self.config.timeout + 5) * 1000)
        while True:
            cached = await self._call(self.client.hget, self.keys.robots, host)
            if cached is not None:
                status, _, text = str(cached).partition("\n")
                return int(status), text
            take = functools.partial(self.client.set, lock, self.worker, nx=True, px=hold_ms)
            if await self._call(take):
                break
            await asyncio.sleep(_ROBOTS_WAIT)
        answer = await fetch()
        await self._call(self.client.hset, self.keys.robots, host, f"{answer[0]}\n{answer[1]}")
        await self._call(self.client.delete, lock)
        return answer

    async def robots_loaded(self, host: str, delay: float | None) -> None:
        await self._run("robots_loaded", host, int((delay or 0) * 1000))
        self._idle_until = 0.0

    async def move_site(self, seed: str, host: str) -> None:
        await self._call(self.client.hset, self.keys.sites, seed, host)

    async def site_roots(self) -> dict[str, str]:
        roots = await self._call(self.client.hgetall, self.keys.sites)
        return {str(seed): str(root) for seed, root in roots.items()}


def _batches(entries: list[tuple[str, int]], size: int = 1000) -> list[list[tuple[str, int]]]:
    """Links in script-sized batches (a page may hold tens of thousands)."""
    return [entries[start : start + size] for start in range(0, len(entries), size)]


def _refused(batch: list[tuple[str, int]], reply: list[Any]) -> list[tuple[str, str]]:
    """(url, reason) for the {index, reason} pairs a script refused of `batch`."""
    return [(batch[int(reply[i]) - 1][0], str(reply[i + 1])) for i in range(0, len(reply), 2)]
