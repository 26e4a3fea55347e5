"""A real Prometheus scrapes a two-worker shared crawl (and its `status --serve-metrics`), a
two-worker migration and an infer service; the sums it computes match what the runs did,
and every query of the shipped Grafana dashboards (docs/dashboards/) parses and returns data.

Everything runs for real: the fixture website, redis-server, the MongoDB-wire server, the
`ishan` commands as subprocesses with `--metrics-port`, and Prometheus itself. The runs keep
serving their final figures (`--metrics-linger`) until the test has queried them; then it
stops every process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pymongo
import pytest

from ishan_tools.crawl.merge import merge_crawls
from tests.crawl.conftest import serve
from tests.harness.mongo_server import database_uri, secantus_server
from tests.harness.ports import free_port
from tests.harness.prometheus import Prometheus
from tests.harness.redis_server import RedisServer
from tests.migrate.helpers import FIXTURES, insert_users

ROOT = Path(__file__).resolve().parents[2]
ISHAN = str(Path(sys.executable).with_name("ishan"))
DASHBOARDS = ROOT / "docs" / "dashboards"
LINGER = "300"  # seconds: longer than the test; it stops the runs itself
COORDINATOR = "ishan-infer-coordinator"  # the job name the infer dashboard expects
USERS = 600
DYN_PAGES = 30


class Run:
    """An `ishan` subprocess whose stdout and stderr go to files (read while it runs)."""

    def __init__(self, args: list[str], out: Path, env: dict[str, str] | None = None) -> None:
        self.out = out
        self._stdout: IO[bytes] = out.open("wb")
        self._stderr: IO[bytes] = out.with_suffix(".err").open("wb")
        self.process = subprocess.Popen(
            [ISHAN, *args],
            stdout=self._stdout,
            stderr=self._stderr,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        )

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def errors(self) -> str:
        return self.out.with_suffix(".err").read_text(errors="replace")

    def wait_until(self, done: Callable[[str], bool], what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.text()):
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"{what}: exited {code}\n{self.text()}{self.errors()}")
            if time.monotonic() > deadline:
                said = (self.text() + self.errors())[-3000:]
                raise AssertionError(f"{what}: not within {timeout} s\n{said}")
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stdout.close()
        self._stderr.close()


def crawl_ended(text: str) -> bool:
    return '"event":"summary"' in text


def json_ended(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel, PromQL) of every target of the shipped dashboards."""
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                queries.append((path.stem, panel["title"], target["expr"]))
    return queries


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[list[Any]]:
    """What the test started (processes and servers), stopped at the end, last first."""
    started: list[Any] = []
    yield started
    for thing in reversed(started):
        thing.stop()


def test_prometheus_sums_a_fleet_and_every_dashboard_query_returns_data(
    tmp_path: Path, stack: list[Any]
) -> None:
    names = ("crawl1", "crawl2", "status", "migrate", "coord", "worker")
    ports = {name: free_port() for name in names}
    target = "127.0.0.1:{}".format
    prometheus = Prometheus(
        tmp_path,
        {
            "ishan-crawl": [target(ports["crawl1"]), target(ports["crawl2"])],
            "ishan-crawl-status": [target(ports["status"])],
            "ishan-migrate": [target(ports["migrate"])],
            COORDINATOR: [target(ports["coord"])],
            "ishan-infer-worker": [target(ports["worker"])],
        },
    )
    prometheus.start()
    stack.append(prometheus)

    # An infer service: one coordinator, one worker (SmolLM2), one request.
    serve_args = ["infer", "serve", "--port", str(ports["coord"]),
                  "--worker-port", str(ports["worker"]), "--workers", "1", "--ctx", "512",
                  "--threads", "1"]  # fmt: skip
    infer = Run(serve_args, tmp_path / "infer.out")
    stack.append(infer)

    # A shared crawl of the fixture site by two workers (errors, a retry, robots denials and
    # skipped links included, so that every dashboard panel has something to show).
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    stack.append(redis_server)
    site_context = serve()
    site = site_context.__enter__()
    stack.append(_Closing(site_context))
    site.dyn_pages = DYN_PAGES
    site.dyn_delay = 0.05
    site.dyn_links = ["/status/404", "/flaky", "/blocked/secret.html", "http://example.invalid/"]
    frontier = redis_server.url(0)
    crawlers = []
    for name in ("crawl1", "crawl2"):
        crawl_args = ["crawl", site.url("/dyn/"), "--frontier", frontier, "--worker-id", name,
                      "-o", str(tmp_path / name), "--log-format", "json", "-c", "2",
                      "--depth", "-1", "--lease", "30", "--heartbeat", "0.5", "--retries", "2",
                      "--metrics-port", str(ports[name]), "--metrics-linger", LINGER]  # fmt: skip
        crawlers.append(Run(crawl_args, tmp_path / f"{name}.out"))
        stack.append(crawlers[-1])

    # A migration of USERS documents by two worker processes.
    mongo_context = secantus_server()
    mongo_base = mongo_context.__enter__()
    stack.append(_Closing(mongo_context))
    uri = database_uri(mongo_base, "observed")
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(uri)
    database = client.get_default_database()
    insert_users(database, USERS)
    migrate_args = ["migrate", "run", str(FIXTURES / "inc_visits.py"), "--uri", uri,
                    "--workers", "2", "--batch-size", "25", "--json", "-q",
                    "--log-dir", str(tmp_path / "logs"), "--metrics-port",
                    str(ports["migrate"]), "--metrics-linger", LINGER]  # fmt: skip
    migration = Run(migrate_args, tmp_path / "migrate.out")
    stack.append(migration)

    for crawler in crawlers:
        crawler.wait_until(crawl_ended, "crawl worker")
    status_args = ["crawl", "status", "--frontier", frontier,
                   "--serve-metrics", str(ports["status"])]  # fmt: skip
    status = Run(status_args, tmp_path / "status.out")
    stack.append(status)
    migration.wait_until(json_ended, "migration")
    summary = json.loads(migration.text())
    assert summary["status"] == "applied", summary

    # The crawl: the workers' pages, summed by Prometheus, are the merged manifest's lines.
    merged = tmp_path / "merged"
    merge_crawls([tmp_path / "crawl1", tmp_path / "crawl2"], merged)
    lines = len((merged / "manifest.jsonl").read_text().splitlines())
    assert lines >= DYN_PAGES + 2
    prometheus.wait_for("sum(ishan_crawl_pages_total)", lines)
    both = prometheus.query("ishan_crawl_pages_total")
    assert {series["metric"]["instance"] for series in both} == {
        target(ports["crawl1"]),
        target(ports["crawl2"]),
    }
    # the crawl-wide figures: every worker reports the same, so max (not sum) is the crawl's
    # (and `ishan crawl status --serve-metrics` serves them, and every host's, from one place)
    prometheus.wait_for('count(ishan_crawl_frontier_urls{state="done"})', 3)
    done = prometheus.value('max(ishan_crawl_frontier_urls{state="done"})')
    failed = prometheus.value('max(ishan_crawl_frontier_urls{state="failed"})')
    assert done is not None and failed is not None and done + failed == lines
    assert prometheus.value(f'max(ishan_crawl_host_queued_urls{{host="{site.netloc}"}})') == 0

    # The migration: the one port of the parent serves its two workers' sum.
    count = database.users.count_documents({})
    assert count == USERS
    prometheus.wait_for("sum(ishan_migrate_documents_processed_total)", count)
    assert len(prometheus.query("ishan_migrate_documents_processed_total")) == 1
    prometheus.wait_for("max(ishan_migrate_partitions_done)", summary_partitions(database))
    written = prometheus.value('sum(ishan_migrate_documents_written_total{collection="orders"})')
    assert written == 2 * USERS  # every user's two orders

    # Infer: one generation through the coordinator.
    infer.wait_until(lambda _: "coordinator listening on" in infer.errors() + infer.text(), "infer")
    coordinator = f"http://127.0.0.1:{ports['coord']}"
    _wait_for_worker(coordinator)
    payload = {"model": "smollm2", "prompt": "hello world", "max_tokens": 8, "temperature": 0}
    response = httpx.post(f"{coordinator}/coordinator/infer", json=payload, timeout=60)
    assert response.status_code == 200, response.text
    prometheus.wait_for(f'sum(ishan_infer_requests_total{{job="{COORDINATOR}",outcome="200"}})', 1)

    time.sleep(3)  # a few more scrapes: every rate() has two samples in its window
    empty, refused = [], []
    for dashboard, panel, expr in dashboard_queries():
        query = expr.replace("$__rate_interval", "1m")
        try:
            if not prometheus.query(query):
                empty.append(f"{dashboard} / {panel}: {expr}")
        except AssertionError as exc:
            refused.append(f"{dashboard} / {panel}: {exc}")
    assert not refused, "queries Prometheus refused:\n" + "\n".join(refused)
    assert not empty, "queries without data:\n" + "\n".join(empty)


def summary_partitions(database: Any) -> int:
    """The partitions of the (only) plan of the database."""
    count: int = database["_ishan_partitions"].count_documents({"state": "done"})
    return count


def _wait_for_worker(coordinator: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            workers = httpx.get(f"{coordinator}/coordinator/health/workers", timeout=5).json()
            if any(worker["healthy"] for worker in workers):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"no healthy infer worker within {timeout} s")


class _Closing:
    """A started context manager, closed by `stop`."""

    def __init__(self, context: Any) -> None:
        self.context = context

    def stop(self) -> None:
        self.context.__exit__(None, None, None)
