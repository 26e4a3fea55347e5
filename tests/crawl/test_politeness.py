"""Politeness and limits: the circuit breaker, delays, per-host slots, stop conditions."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ishan_tools.cli import app
from ishan_tools.crawl import CrawlConfig, Crawler

from .conftest import FixtureServer
from .helpers import Recorder, manifest, run_crawl


def _dyn_status(out: Path, site: FixtureServer) -> dict[int, int | None]:
    records = manifest(out)
    return {i: records[site.url(f"/dyn/p{i}")]["status"] for i in range(site.dyn_pages)}


def test_dying_host_opens_the_breaker_and_its_urls_wait_instead_of_being_dropped(
    site: FixtureServer, tmp_path: Path
) -> None:
    site.dyn_pages = 12
    site.dyn_failures = 4
    out = tmp_path / "out"
    options = dict(concurrency=1, retries=0, breaker_threshold=3, breaker_cooldown=0.5)
    summary, events = run_crawl(site.url("/dyn/"), out, **options)  # type: ignore[arg-type]
    names = events.names()
    assert names.count("breaker_open") == 2  # three failures; then the first trial fails too
    assert "breaker_half_open" in names and "breaker_closed" in names
    # every URL was fetched exactly once: none dropped while the circuit was open
    assert all(count == 1 for count in site.dyn_hits().values())
    assert len(site.dyn_hits()) == 12
    statuses = _dyn_status(out, site)
    assert [statuses[i] for i in range(4)] == [500] * 4
    assert all(statuses[i] == 200 for i in range(4, 12))
    # while open, the host got no request: the trial came a cooldown after the third failure
    assert site.dyn_times[3] - site.dyn_times[2] >= 0.5
    assert summary["errors_by_kind"] == {"http_500": 4}

    # --retry-failed fetches only the failed ones again, and they now succeed
    run_crawl(site.url("/dyn/"), out, retry_failed=True, **options)  # type: ignore[arg-type]
    assert all(status == 200 for status in _dyn_status(out, site).values())
    assert [site.count(f"/dyn/p{i}") for i in range(6)] == [2, 2, 2, 2, 1, 1]


def test_a_host_that_answers_slowly_opens_its_breaker_with_breaker_slow(
    site: FixtureServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ishan crawl`, `ISHAN_CRAWL_BREAKER_SLOW=0.3`: pages that take 0.8 s answer, but three in
    a row open the host's breaker; the next waits the cooldown, every page is still saved."""
    site.dyn_pages = 4
    site.dyn_delay = 0.8
    out = tmp_path / "out"
    monkeypatch.setenv("ISHAN_CRAWL_BREAKER_SLOW", "0.3")
    options = ["--concurrency", "1", "--breaker-threshold", "3", "--breaker-cooldown", "0.5"]
    result = CliRunner().invoke(
        app, ["crawl", site.url("/dyn/"), "-o", str(out), "--log-format", "json", *options]
    )
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    opened = [e for e in events if e["event"] == "breaker_open"]
    # the index was fast, then p0, p1, p2 slow: the last three calls all slow
    assert opened[0]["host"] == site.netloc and opened[0]["slow_calls"] == 3
    assert site.dyn_times[3] - site.dyn_times[2] >= 0.5  # the host paused for the cooldown
    # the trial (p3) was slow too, so it re-opened it; no page was dropped or failed
    assert len(opened) == 2 and [e["event"] for e in events].count("breaker_closed") == 0
    assert all(record["status"] == 200 for record in manifest(out).values())
    summary = events[-1]
    assert summary["event"] == "summary" and summary["errors"] == 0
    assert summary["breakers"] == {site.netloc: {"state": "open", "opened": 2}}


def test_slow_pages_do_not_count_without_breaker_slow(site: FixtureServer, tmp_path: Path) -> None:
    site.dyn_pages = 4
    site.dyn_delay = 0.3
    options = dict(concurrency=1, breaker_threshold=2)
    summary, events = run_crawl(site.url("/dyn/"), tmp_path / "out", **options)  # type: ignore[arg-type]
    assert "breaker_open" not in events.names()
    assert summary["breakers"] == {} and summary["pages"] == 5


def test_client_errors_do_not_open_the_breaker(site: FixtureServer, tmp_path: Path) -> None:
    site.dyn_pages = 10
    site.dyn_failures = 8
    site.dyn_status = 404
    out = tmp_path / "out"
    _, events = run_crawl(site.url("/dyn/"), out, concurrency=1, retries=0, breaker_threshold=3)
    assert "breaker_open" not in events.names()
    assert len(site.dyn_hits()) == 10


def test_crawl_delay_from_robots_spaces_requests(site: FixtureServer, tmp_path: Path) -> None:
    site.robots = "User-agent: *\nCrawl-delay: 0.3\n"
    site.dyn_pages = 4
    out = tmp_path / "out"
    _, events = run_crawl(site.url("/dyn/"), out)
    assert events.named("robots")[0]["crawl_delay"] == 0.3
    starts = [e.ts for e in events.events if e.name == "fetch"]
    assert len(starts) == 5
    assert all(later - earlier >= 0.29 for earlier, later in itertools.pairwise(starts))


def test_per_host_concurrency_caps_requests_in_flight(site: FixtureServer, tmp_path: Path) -> None:
    site.dyn_pages = 12
    site.dyn_delay = 0.2
    run_crawl(site.url("/dyn/"), tmp_path / "out", concurrency=8, per_host_concurrency=2)
    assert site.dyn_peak_active == 2
    assert len(site.dyn_hits()) == 12


def test_max_pages_stops_and_leaves_the_rest_queued(site: FixtureServer, tmp_path: Path) -> None:
    site.dyn_pages = 10
    out = tmp_path / "out"
    summary, _ = run_crawl(site.url("/dyn/"), out, max_pages=4, concurrency=1)
    assert summary["stop_reason"] == "max_pages"
    assert len(manifest(out)) == 4
    assert summary["queued"] == 7


def test_max_time_stops_a_slow_crawl(site: FixtureServer, tmp_path: Path) -> None:
    site.dyn_pages = 30
    site.dyn_delay = 0.2
    out = tmp_path / "out"
    summary, _ = run_crawl(site.url("/dyn/"), out, max_time=1.0, concurrency=1)
    assert summary["stop_reason"] == "max_time"
    assert 1 <= len(manifest(out)) < 31


def test_max_bytes_stops_after_the_budget(site: FixtureServer, tmp_path: Path) -> None:
    site.dyn_pages = 10
    out = tmp_path / "out"
    summary, _ = run_crawl(site.url("/dyn/"), out, max_bytes=300, concurrency=1)
    assert summary["stop_reason"] == "max_bytes"
    assert summary["bytes"] >= 300
    assert len(manifest(out)) < 11


def test_frontier_memory_stays_bounded_on_a_large_site(site: FixtureServer, tmp_path: Path) -> None:
    site.dyn_pages = 5000
    recorder = Recorder()
    config = CrawlConfig(
        seed=site.url("/dyn/"), out_dir=tmp_path / "out", memory_queue=100, max_pages=150
    )
    crawler = Crawler(config, sink=recorder)
    summary = asyncio.run(crawler.run())
    assert crawler.frontier.peak_in_memory <= 100
    # the other URLs wait on disk, in the frontier log, and are read back in order
    assert summary["pages"] == 150
    assert summary["queued"] == 5001 - 150
    fetched = [e["url"] for e in recorder.named("fetch")]
    assert fetched[:3] == [site.url("/dyn/"), site.url("/dyn/p0"), site.url("/dyn/p1")]
    assert len(set(fetched)) == 150


def test_bounded_frontier_crawls_the_same_pages(site: FixtureServer, tmp_path: Path) -> None:
    site.dyn_pages = 60
    run_crawl(site.url("/dyn/"), tmp_path / "big")
    run_crawl(site.url("/dyn/"), tmp_path / "small", memory_queue=5)
    assert set(manifest(tmp_path / "big")) == set(manifest(tmp_path / "small"))
    assert len(manifest(tmp_path / "small")) == 61
