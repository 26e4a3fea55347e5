"""Real worker processes sharing one crawl through a real redis-server.

Several workers save the same pages as one process; a killed worker loses nothing; the
crawl ends by itself; politeness holds across workers (read from the server's own request
times); a Redis blip or restart loses nothing; a joiner with other options is refused.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ishan_tools.cli import app
from tests.harness.redis_server import RedisServer

from .conftest import FixtureServer
from .helpers import manifest, run_crawl
from .workers import leases_held, merged, run_workers, saved_urls, start_worker, wait_for


def _cross_linked(sites: list[FixtureServer], pages: int) -> list[str]:
    for index, site in enumerate(sites):
        site.dyn_pages = pages
        site.dyn_delay = 0.02
        site.dyn_links = [sites[(index + 1) % len(sites)].url("/dyn/p1")]
    return [site.url("/dyn/") for site in sites]


def _all_dyn(sites: list[FixtureServer], pages: int) -> set[str]:
    return {s.url("/dyn/") for s in sites} | {
        s.url(f"/dyn/p{i}") for s in sites for i in range(pages)
    }


def test_two_and_three_workers_save_what_one_process_saves(
    sites: list[FixtureServer], fresh_frontier: Callable[[], str], tmp_path: Path
) -> None:
    seeds = _cross_linked(sites, pages=12)
    alone = tmp_path / "alone"
    run_crawl(seeds[0], alone, seeds=seeds[1:], max_depth=-1)
    expected = saved_urls(manifest(alone))
    assert expected == _all_dyn(sites, 12)
    for count in (2, 3):
        workers = run_workers(fresh_frontier(), seeds, tmp_path / f"x{count}", count)
        records = merged(workers, tmp_path / f"x{count}")
        assert saved_urls(records) == expected
        assert {r["worker"] for r in records.values()} <= {w.name for w in workers}
        for worker in workers:
            summary = worker.events("summary")[-1]
            assert summary["stop_reason"] == "complete" and summary["worker"] == worker.name
        assert sum(w.events("summary")[-1]["pages"] for w in workers) >= len(expected)


def test_kill_9_of_a_worker_mid_crawl_loses_no_url(
    site: FixtureServer, frontier: str, tmp_path: Path
) -> None:
    site.dyn_pages = 60
    site.dyn_delay = 0.05
    victim = start_worker(frontier, [site.url("/dyn/")], tmp_path, "victim")
    other = start_worker(frontier, [site.url("/dyn/")], tmp_path, "other")
    try:
        wait_for(lambda: victim.saved() >= 8 and other.saved() >= 1)
        # killed while it holds a lease (not between an acknowledgement and its next claim)
        wait_for(lambda: leases_held(frontier, "victim") >= 1)
        status = CliRunner().invoke(app, ["crawl", "status", "--frontier", frontier, "--json"])
        assert '"workers_alive": 2' in status.stdout, status.output
        os.kill(victim.process.pid, signal.SIGKILL)
        assert victim.finish() == -signal.SIGKILL
        assert other.finish() == 0, other.stderr
    finally:
        victim.stop()
        other.stop()
    records = merged([victim, other], tmp_path)
    assert saved_urls(records) == {site.url("/dyn/")} | {site.url(f"/dyn/p{i}") for i in range(60)}
    assert all(record["status"] == 200 for record in records.values())
    # what the victim held was fetched again by the other worker, once its lease expired
    assert other.events("requeued")


def test_the_delay_holds_across_workers(site: FixtureServer, frontier: str, tmp_path: Path) -> None:
    site.dyn_pages = 8
    run_workers(frontier, [site.url("/dyn/")], tmp_path, 3, "--delay", "0.4")
    times = sorted(site.dyn_times)  # the server's own arrival times, from three workers
    assert len(times) == 8
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Workers that each kept the delay alone would send three requests at once (gaps near
    # 0). A request can reach the server late (a fresh process's first one leaves some 50 ms
    # late while httpx loads its async backend; a loaded machine schedules the server late),
    # which shortens the gap after it: hence half the delay for the shortest gap, and the
    # whole delay, nearly, for the median and the span.
    assert min(gaps) >= 0.2, gaps
    assert statistics.median(gaps) >= 0.38, gaps
    assert times[-1] - times[0] >= 7 * 0.38, gaps


def test_per_host_concurrency_holds_across_workers(
    site: FixtureServer, frontier: str, tmp_path: Path
) -> None:
    site.dyn_pages = 16
    site.dyn_delay = 0.2
    seeds = [site.url("/dyn/")]
    run_workers(frontier, seeds, tmp_path, 3, "-c", "4", "--per-host-concurrency", "2")
    assert site.dyn_peak_active == 2
    assert len(site.dyn_hits()) == 16


def test_a_redis_blip_mid_crawl_loses_nothing(
    site: FixtureServer, redis_server: RedisServer, frontier: str, tmp_path: Path
) -> None:
    site.dyn_pages = 40
    site.dyn_delay = 0.05
    blip = ["--frontier-timeout", "8"]  # socket timeouts at 2.7 s: the 3 s blip is noticed
    workers = [
        start_worker(frontier, [site.url("/dyn/")], tmp_path, f"w{i}", *blip) for i in (1, 2)
    ]
    try:
        wait_for(lambda: sum(w.saved() for w in workers) >= 6)
        redis_server.pause()
        time.sleep(3)
        redis_server.resume()
        for worker in workers:
            assert worker.finish() == 0, worker.stderr
    finally:
        redis_server.resume()
        for worker in workers:
            worker.stop()
    records = merged(workers, tmp_path)
    assert saved_urls(records) == {site.url("/dyn/")} | {site.url(f"/dyn/p{i}") for i in range(40)}
    lost = [e for w in workers for e in w.events("frontier_lost")]
    back = [e for w in workers for e in w.events("frontier_back")]
    assert lost and back


def test_a_restart_of_a_persistent_redis_loses_nothing(site: FixtureServer, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    site.dyn_pages = 40
    site.dyn_delay = 0.05
    seeds = [site.url("/dyn/")]
    workers = [start_worker(server.url(), seeds, tmp_path, f"w{i}") for i in (1, 2)]
    try:
        wait_for(lambda: sum(w.saved() for w in workers) >= 6)
        server.stop()
        time.sleep(1)
        server.start()
        for worker in workers:
            assert worker.finish() == 0, worker.stderr
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
    records = merged(workers, tmp_path)
    assert saved_urls(records) == {site.url("/dyn/")} | {site.url(f"/dyn/p{i}") for i in range(40)}


def test_a_joiner_with_other_options_is_refused(
    site: FixtureServer, frontier: str, tmp_path: Path
) -> None:
    site.dyn_pages = 3
    seeds = [site.url("/dyn/")]
    run_workers(frontier, seeds, tmp_path, 1, "--depth", "1", "--delay", "0.01")
    runner = CliRunner()
    base = ["crawl", *seeds, "--frontier", frontier, "-q", "--delay", "0.01", "-o"]
    refused = runner.invoke(app, [*base, str(tmp_path / "j1"), "--depth", "2"])
    assert refused.exit_code == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "--depth 1 (here 2)" in lines[0], refused.stderr
    assert not (tmp_path / "j1").exists()  # refused before it wrote anything
    # the same options join the (finished) crawl: nothing left, it ends at once
    joined = runner.invoke(app, [*base, str(tmp_path / "j2"), "--depth", "1"])
    assert joined.exit_code == 0, joined.output
    assert "crawl complete" in joined.stdout


def test_a_frontier_that_never_answers_ends_the_worker_with_one_line(tmp_path: Path) -> None:
    from tests.harness.ports import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    args = ["crawl", "http://127.0.0.1:9/", "--frontier", url, "--frontier-timeout", "0.5"]
    result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: cannot reach the frontier {url}"), result.stderr


@pytest.mark.parametrize("what", ["status", "forget"])
def test_status_and_forget_of_a_missing_crawl(frontier: str, what: str) -> None:
    result = CliRunner().invoke(app, ["crawl", what, "--frontier", frontier, "--crawl-id", "x"])
    assert result.exit_code == 1
    assert "there is no crawl x at" in result.stderr


def test_the_shared_breaker_pauses_a_failing_host_for_every_worker(
    site: FixtureServer, frontier: str, tmp_path: Path
) -> None:
    site.dyn_pages = 24
    site.dyn_delay = 0.05
    site.dyn_failures = 5
    options = ["--retries", "0", "--breaker-threshold", "3", "--breaker-cooldown", "1.5"]
    workers = run_workers(frontier, [site.url("/dyn/")], tmp_path, 2, *options)
    times = sorted(site.dyn_times)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    pauses = [i for i, gap in enumerate(gaps) if gap >= 1.3]
    # while open, neither worker sent the host a request; then one trial went alone
    assert pauses, gaps
    for i in pauses:
        assert i + 1 == len(gaps) or gaps[i + 1] >= 0.04, gaps
    assert len(site.dyn_hits()) == 24
    opened = [e for w in workers for e in w.events("breaker_open")]
    assert opened and all(e["host"] == site.netloc for e in opened)
    after = times[pauses[0] + 1]
    records = merged(workers, tmp_path)
    statuses = [r["status"] for url, r in records.items() if "/dyn/p" in url]
    assert statuses.count(500) == 5 and statuses.count(200) == 19
    # both workers fetched pages again once the host was closed
    assert all(w.events("save") for w in workers)
    assert after > times[0]


def test_ctrl_c_gives_the_leases_back_at_once(
    site: FixtureServer, frontier: str, tmp_path: Path
) -> None:
    site.dyn_pages = 30
    site.dyn_delay = 0.3
    worker = start_worker(frontier, [site.url("/dyn/")], tmp_path, "w", "--lease", "60")
    try:
        wait_for(lambda: worker.saved() >= 3)
        worker.process.send_signal(signal.SIGINT)
        assert worker.finish() == 130
    finally:
        worker.stop()
    status = CliRunner().invoke(app, ["crawl", "status", "--frontier", frontier, "--json"])
    snapshot = json.loads(status.stdout)
    # not held for the 60 s lease: back in the queue for the next worker
    assert snapshot["leased"] == 0 and snapshot["queued"] > 0
    assert snapshot["workers_alive"] == 0
