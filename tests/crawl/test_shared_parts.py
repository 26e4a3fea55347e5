"""The shared crawl's parts against a real redis-server: dedupe hashing, the breaker store,
status and forget, merge, a crawl whose first worker left before seeding it, a cancel that
lands mid-call."""

from __future__ import annotations

import asyncio
import functools
import json
import random
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis
import redis.asyncio
from typer.testing import CliRunner

from ishan_tools.breaker import CircuitBreaker, CircuitBreakerOpenError, CircuitState
from ishan_tools.breaker.store import BreakerRules, Outcome, Refused
from ishan_tools.cli import app
from ishan_tools.crawl import CrawlConfig
from ishan_tools.crawl.frontier import QueuedURL
from ishan_tools.crawl.shared.dedupe import LOW_BITS
from ishan_tools.crawl.shared.frontier import RedisFrontier
from ishan_tools.crawl.shared.keys import CrawlKeys, frontier_retry, stable_hash
from ishan_tools.crawl.sites import Sites
from ishan_tools.stores.breaker import RedisBreakerStore
from ishan_tools.stores.client import async_client

from .conftest import FixtureServer
from .helpers import manifest
from .workers import merged, run_workers, saved_urls


def test_the_scripts_bucket_hashes_as_python_does(frontier: str) -> None:
    client = redis.Redis.from_url(frontier)
    script = client.register_script(
        LOW_BITS + "local out = {} for i = 1, #ARGV, 2 do "
        "out[#out + 1] = low_bits(ARGV[i], tonumber(ARGV[i + 1])) end return out"
    )
    rng = random.Random(7)
    values = [stable_hash(f"http://h/{i}") for i in range(200)]
    values += [-(2**63), 2**63 - 1, 0, -1, 1, 10**15, -(10**15) - 1]
    args: list[object] = []
    expected = []
    for value in values:
        k = rng.randrange(0, 27)
        args += [str(value), k]
        expected.append(value % (1 << k))
    assert script(args=args) == expected


def test_the_dedupe_set_keeps_every_url_through_its_splits(frontier: str) -> None:
    config = CrawlConfig(seed="http://127.0.0.1:9/", frontier=frontier, crawl_id="dedupe")
    urls = [f"http://127.0.0.1:9/p/{i}" for i in range(3000)]

    async def crawl() -> None:
        first = RedisFrontier(config, emit=lambda name, **fields: None)
        await first.open(Sites(config.start_urls, allow_subdomains=False), None)
        await first.push(None, [(url, 1) for url in urls])
        await first.close()
        # another worker, knowing nothing locally, finds each of them already there
        second = RedisFrontier(config, emit=lambda name, **fields: None)
        await second.open(Sites(config.start_urls, allow_subdomains=False), None)
        await second.push(None, [(url, 2) for url in urls[::7]])
        await second.close()

    asyncio.run(crawl())
    client = redis.Redis.from_url(frontier, decode_responses=True)
    keys = CrawlKeys("dedupe")
    meta = client.hgetall(keys.meta)
    assert int(meta["n"]) == 3000 and int(meta["L"]) >= 3  # it split
    assert client.hget(keys.stats, "queued") == "3000"  # none queued twice
    buckets = [key for key in client.scan_iter(keys.prefix + "seen:*")]
    assert sum(client.scard(key) for key in buckets) == 3000
    assert {client.object("encoding", key) for key in buckets} == {"intset"}


def _store(frontier: str, **rules: float) -> RedisBreakerStore:
    client = redis.Redis.from_url(frontier, decode_responses=True)
    settings = BreakerRules(**{"failure_threshold": 2, "recovery_timeout": 0.3, **rules})
    return RedisBreakerStore(settings, client=client, key="test:breaker", trial_ttl=5)


def test_the_breaker_store_opens_and_admits_exactly_one_trial_across_clients(
    frontier: str,
) -> None:
    store = _store(frontier)
    for _ in range(2):
        permit = store.acquire()
        transition = store.record(permit, Outcome.FAILURE)
    assert transition == (CircuitState.CLOSED, CircuitState.OPEN)
    with pytest.raises(Refused) as refused:
        store.acquire()
    assert 0 < refused.value.retry_after <= 0.3
    asyncio.run(asyncio.sleep(0.35))
    stores = [_store(frontier) for _ in range(8)]  # eight clients, as if eight processes
    results: list[object] = []
    barrier = threading.Barrier(len(stores))

    def race(own: RedisBreakerStore) -> None:
        barrier.wait()
        try:
            results.append(own.acquire())
        except Refused as exc:
            results.append(exc)

    threads = [threading.Thread(target=race, args=(own,)) for own in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trials = [r for r in results if not isinstance(r, Refused)]
    assert len(trials) == 1
    assert store.read().state is CircuitState.HALF_OPEN
    assert stores[0].record(trials[0], Outcome.SUCCESS) == (  # type: ignore[arg-type]
        CircuitState.HALF_OPEN,
        CircuitState.CLOSED,
    )
    assert store.read().state is CircuitState.CLOSED


def test_a_trial_whose_process_died_frees_its_slot(frontier: str) -> None:
    store = _store(frontier)
    store.force(CircuitState.OPEN)
    asyncio.run(asyncio.sleep(0.35))
    short = RedisBreakerStore(
        store.rules, client=redis.Redis.from_url(frontier), key=store.key, trial_ttl=0.2
    )
    assert short.acquire().trial  # and its process never reports back
    with pytest.raises(Refused):
        store.acquire()
    asyncio.run(asyncio.sleep(0.25))
    assert store.acquire().trial


def test_breakers_over_one_redis_store_share_the_circuit_and_its_one_trial(
    frontier: str,
) -> None:
    """`CircuitBreaker.call_async` over async `RedisBreakerStore`s, one client each (as the
    workers have): one breaker's failures open the circuit for all, one trial in all runs,
    each transition's callbacks fire in the breaker that made it, every step is `retrying`'s."""
    moves: list[tuple[int, str]] = []
    round_trips = 0

    async def retrying(func: Callable[..., Awaitable[object]], *args: object) -> object:
        nonlocal round_trips
        round_trips += 1
        return await func(*args)

    async def crawl() -> list[object]:
        clients = [redis.asyncio.Redis.from_url(frontier) for _ in range(4)]
        breakers = [
            CircuitBreaker(
                failure_threshold=2,
                recovery_timeout=0.3,
                name="h",
                on_state_change=lambda old, new, i=i: moves.append((i, new.value)),
                store=functools.partial(
                    RedisBreakerStore,
                    key="test:shared",
                    async_client=client,
                    trial_ttl=5,
                    retrying=retrying,
                ),
            )
            for i, client in enumerate(clients)
        ]

        async def fail() -> None:
            raise OSError("down")

        async def trial() -> str:
            await asyncio.sleep(0.1)
            return "ran"

        for _ in range(2):
            with pytest.raises(OSError):
                await breakers[0].call_async(fail)
        with pytest.raises(CircuitBreakerOpenError):
            await breakers[1].call_async(trial)  # a store with no view yet asks Redis
        await asyncio.sleep(0.35)
        results = await asyncio.gather(
            *(b.call_async(trial) for b in breakers), return_exceptions=True
        )
        for client in clients:
            await client.aclose()
        return results

    results = asyncio.run(crawl())
    assert results.count("ran") == 1
    assert all(isinstance(r, CircuitBreakerOpenError) for r in results if r != "ran")
    closer = results.index("ran")
    assert moves == [(0, "open"), (closer, "half_open"), (closer, "closed")]
    assert round_trips == 4 + 1 + 4 + 1  # two failures, a refusal, four permits, one success


def test_merge_keeps_the_last_line_per_url_and_copies_each_file_once(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for path, lines in (
        (
            one,
            [
                ("http://h/a", "a1.html", "2026-01-01T00:00:01Z"),
                ("http://h/b", "b.html", "2026-01-01T00:00:01Z"),
            ],
        ),
        (
            two,
            [
                ("http://h/a", "a1.html", "2026-01-01T00:00:05Z"),
                ("http://h/c", None, "2026-01-01T00:00:02Z"),
            ],
        ),
    ):
        path.mkdir()
        with (path / "manifest.jsonl").open("w") as fh:
            for url, file, when in lines:
                fh.write(
                    json.dumps({"url": url, "file": file, "fetched_at": when, "worker": path.name})
                    + "\n"
                )
                if file:
                    (path / file).write_text(f"{url} by {path.name}")
        with (path / "manifest.jsonl").open("a") as fh:
            fh.write('{"url": "http://h/cut')  # a line a kill cut short
    result = CliRunner().invoke(
        app, ["crawl", "merge", str(one), str(two), "-o", str(tmp_path / "m")]
    )
    assert result.exit_code == 0, result.output
    assert "3 URLs (1 repeated lines dropped), 2 files" in result.stdout
    records = manifest(tmp_path / "m")
    assert records["http://h/a"]["worker"] == "two"
    assert (tmp_path / "m" / "a1.html").read_text() == "http://h/a by two"
    again = CliRunner().invoke(app, ["crawl", "merge", str(one), "-o", str(tmp_path / "m")])
    assert again.exit_code == 2 and "already holds a crawl" in again.stderr


def test_status_then_forget_of_a_finished_crawl(
    site: FixtureServer, frontier: str, tmp_path: Path
) -> None:
    site.dyn_pages = 5
    run_workers(frontier, [site.url("/dyn/")], tmp_path, 2)
    runner = CliRunner()
    result = runner.invoke(app, ["crawl", "status", "--frontier", frontier, "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["state"] == "finished"
    assert (status["queued"], status["leased"], status["done"], status["failed"]) == (0, 0, 6, 0)
    assert status["hosts"] == [
        {"host": site.netloc, "queued": 0, "leased": 0, "done": 6, "failed": 0, "skipped": 0,
         "breaker": "closed"}
    ]  # fmt: skip
    table = runner.invoke(app, ["crawl", "status", "--frontier", frontier])
    assert "finished" in table.stdout and site.netloc in table.stdout
    gone = runner.invoke(app, ["crawl", "forget", "--frontier", frontier])
    assert gone.exit_code == 0 and "keys deleted" in gone.stdout
    assert redis.Redis.from_url(frontier).dbsize() == 0


def test_a_crawl_left_unseeded_by_its_first_worker_is_seeded_by_the_next(
    site: FixtureServer, frontier: str, tmp_path: Path
) -> None:
    site.dyn_pages = 4
    seeds = [site.url("/dyn/")]
    config = CrawlConfig(
        seeds=seeds, frontier=frontier, max_depth=-1, lease=1.5, heartbeat=0.3,
        frontier_timeout=20, out_dir=tmp_path / "gone",
    )  # fmt: skip

    async def join_and_leave() -> bool:
        first = RedisFrontier(config, emit=lambda name, **fields: None)
        seed_it, _ = await first.open(Sites(config.start_urls, allow_subdomains=False), None)
        await first.close()
        return seed_it

    assert asyncio.run(join_and_leave())
    workers = run_workers(frontier, seeds, tmp_path, 1)
    assert len(saved_urls(merged(workers, tmp_path))) == 5


def test_a_worker_writes_to_crawl_out_worker_id_by_default(
    site: FixtureServer, frontier: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.dyn_pages = 1
    monkeypatch.chdir(tmp_path)
    args = ["crawl", site.url("/dyn/"), "--frontier", frontier, "--worker-id", "one", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    records = manifest(tmp_path / "crawl_out" / "one")
    assert {r["worker"] for r in records.values()} == {"one"}
    refused = CliRunner().invoke(app, [*args, "--resume"])
    assert refused.exit_code == 2 and "--resume" in refused.stderr


def test_a_page_of_thousands_of_links_is_queued_whole(
    site: FixtureServer, frontier: str, tmp_path: Path
) -> None:
    site.dyn_pages = 2500  # more links than one script call carries
    workers = run_workers(frontier, [site.url("/dyn/")], tmp_path, 1, "--max-pages", "1")
    assert workers[0].events("summary")[-1]["stop_reason"] == "max_pages"
    status = json.loads(
        CliRunner().invoke(app, ["crawl", "status", "--frontier", frontier, "--json"]).stdout
    )
    assert (status["queued"], status["done"], status["seen"]) == (2500, 1, 2501)


def test_query_traps_are_capped_for_the_whole_crawl(
    site: FixtureServer, frontier: str, tmp_path: Path
) -> None:
    workers = run_workers(
        frontier, [site.url("/trap/calendar")], tmp_path, 2, "--max-query-variants", "3"
    )
    months = [path for path in site.hits if path.startswith("/trap/calendar?")]
    assert len(months) == 3  # across both workers
    skipped = [e for w in workers for e in w.events("link_skip") if e["reason"] == "query_trap"]
    assert skipped


def _fence_config(frontier: str, crawl_id: str, worker: str, **extra: int) -> CrawlConfig:
    return CrawlConfig(
        seed="http://127.0.0.1:9/", frontier=frontier, crawl_id=crawl_id, worker_id=worker,
        lease=0.2, heartbeat=0.1, obey_robots=False, frontier_timeout=5, **extra,
    )  # fmt: skip


async def _fenced_ack(frontier: str, crawl_id: str, **extra: int) -> tuple[list[str], str]:
    """Worker a claims the one URL and lets its lease expire; worker b claims once; then a
    acknowledges: a's events, and the crawl's `done` count."""
    events: list[str] = []
    a = RedisFrontier(
        _fence_config(frontier, crawl_id, "a", **extra), emit=lambda n, **f: events.append(n)
    )
    b = RedisFrontier(_fence_config(frontier, crawl_id, "b", **extra), emit=lambda n, **f: None)
    sites = Sites(["http://127.0.0.1:9/"], allow_subdomains=False)
    await a.join(sites)
    await a.open(sites, None)
    await a.push(None, [("http://127.0.0.1:9/one", 0)])
    await a.seeded()
    await b.join(sites)
    await b.open(sites, None)
    assert a._heartbeat is not None
    a._heartbeat.cancel()  # a is cut off: it renews nothing from now on
    item = await a.claim()
    assert isinstance(item, QueuedURL)
    await asyncio.sleep(0.4)  # a's lease expires
    await b.claim()  # reaps a's lease; takes the URL again unless --max-pages stops it
    await a.done(item, "done")
    await a.done(item, "done")  # a retry whose first reply was lost: the same answer, no event
    await a.close()
    await b.close()
    done = redis.Redis.from_url(frontier, decode_responses=True).hget(
        CrawlKeys(crawl_id).stats, "done"
    )
    return events, str(done)


def test_a_late_acknowledgement_counts_until_another_worker_takes_the_url(
    frontier: str,
) -> None:
    # --max-pages 1: b's claim reaps the lease, then stops; nobody holds the URL
    events, done = asyncio.run(_fenced_ack(frontier, "late", max_pages=1))
    assert events.count("ack_late") == 1 and "ack_refused" not in events and done == "1"
    # b takes the URL under a new token: a's acknowledgement is fenced off, and a says so
    events, done = asyncio.run(_fenced_ack(frontier, "fenced"))
    assert events.count("ack_refused") == 2 and "ack_late" not in events and done == "None"


def test_a_cancel_that_lands_mid_call_stops_a_loop_of_frontier_calls(frontier: str) -> None:
    """redis-py can swallow a task.cancel() that lands while a command is in flight; a worker's
    heartbeat loop then ran on and the worker never exited. Its calls raise the cancel again:
    every one of many cancels, landing at different moments, ends the loop at once."""

    async def main() -> list[int]:
        client = async_client(frontier, 5.0)
        call = frontier_retry(frontier, 20, lambda event, **fields: None)
        running = True
        hung = []
        for attempt in range(60):

            async def beat() -> None:
                while running:  # without it, a swallowed cancel would outlive the test
                    await asyncio.sleep(0.001)
                    await call(client.ping)

            task = asyncio.create_task(beat())
            await asyncio.sleep(0.003 + (attempt % 7) * 0.0007)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=2)
            if not done:
                hung.append(attempt)
        running = False
        await client.aclose()
        return hung

    assert asyncio.run(main()) == []
