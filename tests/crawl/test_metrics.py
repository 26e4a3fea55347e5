"""`ishan crawl --metrics-port`: the figures a user scrapes match the crawl's own summary."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from ishan_tools.crawl.merge import merge_crawls
from ishan_tools.observe.exporter import OTHER, capped
from tests.observe.served import ISHAN, Served, value

from .conftest import FixtureServer
from .workers import run_workers


def test_a_crawl_serves_its_summary_figures_and_lingers_after_it(
    site: FixtureServer, tmp_path: Path
) -> None:
    site.dyn_pages = 6
    site.dyn_links = ["/status/404", "/blocked/secret.html", "http://example.invalid/"]
    run = Served("crawl", site.url("/dyn/"), "-o", f"{tmp_path}/out", "--log-format", "json")
    try:
        run.wait_for_output('"event":"summary"')
        summary = json.loads(next(line for line in run.stdout if '"summary"' in line))
        samples = run.samples()  # served after the crawl ended: --metrics-linger
    finally:
        assert run.stop() == 130
    assert value(samples, "ishan_crawl_pages_total") == summary["pages"] == 8
    assert value(samples, "ishan_crawl_bytes_total") == summary["bytes"]
    assert value(samples, "ishan_crawl_responses_total", status_class="2xx") == 7
    assert value(samples, "ishan_crawl_responses_total", status_class="4xx") == 1
    assert value(samples, "ishan_crawl_errors_total", kind="http_404") == 1
    assert value(samples, "ishan_crawl_robots_denied_total") == 1
    for reason, count in summary["skipped_by_reason"].items():
        assert value(samples, "ishan_crawl_skipped_urls_total", reason=reason) == count
    assert value(samples, "ishan_crawl_fetch_duration_seconds_count") == 8
    assert value(samples, "ishan_crawl_page_size_bytes_count") == summary["saved"]
    assert value(samples, "ishan_crawl_fetches_in_flight") == 0
    assert value(samples, "ishan_crawl_host_queued_urls", host=site.netloc) == 0
    assert value(samples, "ishan_crawl_host_breaker_state", host=site.netloc) == 0
    assert value(samples, "ishan_crawl_hosts", breaker="closed") == 1


def test_host_labels_stop_at_the_cap_and_the_rest_is_other() -> None:
    queues = {f"host{i:05d}.example": float(i % 97) for i in range(100_000)}
    kept = capped(queues, 20)
    assert len(kept) == 21 and kept[-1][0] == OTHER
    assert sum(count for _, count in kept) == sum(queues.values())
    assert all(count == 96 for _, count in kept[:20])
    assert capped({"a": 1.0, "b": 2.0}, 20) == [("b", 2.0), ("a", 1.0)]


def test_a_metrics_port_in_use_is_one_line_and_exit_2(site: FixtureServer, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [ISHAN, "crawl", site.url("/"), "-o", f"{tmp_path}/out", "--metrics-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: cannot serve metrics on 127.0.0.1:{port} (address in use): pick another "
        "--metrics-port or --metrics-host"
    ]
    assert not (tmp_path / "out").exists()


def test_status_serves_a_shared_crawls_figures_from_one_place(
    site: FixtureServer, frontier: str, tmp_path: Path
) -> None:
    site.dyn_pages = 5
    site.dyn_links = ["/status/404"]
    run_workers(frontier, [site.url("/dyn/")], tmp_path, 2)
    lines = len(merged_lines(tmp_path))
    status = Served("crawl", "status", "--frontier", frontier, "--serve-metrics", "0", serve=False)
    try:
        samples = status.samples()
    finally:
        assert status.stop() == 130
    crawls = {dict(labels)["crawl"] for (_, labels) in samples if "crawl" in dict(labels)}
    assert len(crawls) == 1
    crawl = crawls.pop()
    urls = "ishan_crawl_frontier_urls"
    done = value(samples, urls, crawl=crawl, state="done")
    failed = value(samples, urls, crawl=crawl, state="failed")
    assert done is not None and failed == 1 and done + failed == lines == 7
    assert value(samples, urls, crawl=crawl, state="queued") == 0
    assert value(samples, "ishan_crawl_workers_alive", crawl=crawl) == 0
    queued = "ishan_crawl_host_queued_urls"
    assert value(samples, queued, crawl=crawl, host=site.netloc) == 0
    assert value(samples, "ishan_crawl_hosts", crawl=crawl, breaker="closed") == 1


def merged_lines(tmp_path: Path) -> list[str]:
    merge_crawls([tmp_path / "w0", tmp_path / "w1"], tmp_path / "merged")
    return (tmp_path / "merged" / "manifest.jsonl").read_text().splitlines()
