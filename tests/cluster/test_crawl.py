"""The shared crawl under network partitions: a Redis host, two site hosts, three worker hosts.

- A worker cut from Redis (not from the sites) for longer than --lease while it holds leases,
  then healed: every URL is saved by some worker, `ishan crawl merge` gives one line per URL,
  and an acknowledgement of a URL another worker took meanwhile is refused (`ack_refused`).
- The same cut while nobody can take the URLs (politeness holds the sites): the late
  acknowledgements count (`ack_late`) and nothing is fetched twice.
- Redis cut from every worker for less than --frontier-timeout: the workers pause and go on.
- Redis cut for longer: every worker exits 1 with one line; restarted, they finish the crawl.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.cluster.conftest import ISHAN, Clock, Figures, start_redis, start_site
from tests.cluster.net import Host, Network
from tests.harness.waiting import wait_until

PAGES = 20  # per site, plus its index page
CRAWL = "cluster"
HOLDER = f"ishan:crawl:{{{CRAWL}}}:holder"


@dataclass
class CrawlWorker:
    host: Host
    out: Path
    events_file: Path
    errors_file: Path
    process: subprocess.Popen[str]

    def finish(self, timeout: float = 90) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"worker {self.host.name} did not end within {timeout} s: {self.errors()[-1000:]}"
            ) from None

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = self.events_file.read_text().splitlines()
        found = [json.loads(line) for line in lines if line.startswith("{")]
        return [event for event in found if event["event"] == name]

    def errors(self) -> str:
        return self.errors_file.read_text()


def start_worker(
    net: Network, host: Host, frontier: str, seeds: list[str], tmp: Path, *extra: str
) -> CrawlWorker:
    out = tmp / host.name
    runs = len(list(tmp.glob(f"{host.name}.*.events")))
    events, errors = tmp / f"{host.name}.{runs}.events", tmp / f"{host.name}.{runs}.stderr"
    argv = [ISHAN, "crawl", *seeds, "--frontier", frontier, "--crawl-id", CRAWL]
    argv += ["--worker-id", host.name, "-o", str(out), "--log-format", "json", "--depth", "-1"]
    argv += ["-c", "2", "--ignore-robots", "--retries", "0", *extra]
    command = ["ip", "netns", "exec", host.netns, *argv]
    with events.open("w") as stdout, errors.open("w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)
    host.processes.append(process)
    return CrawlWorker(host, out, events, errors, process)


def build(
    net: Network, tmp: Path, delay: float, pages: int = PAGES
) -> tuple[str, list[str], dict[str, Host]]:
    hosts = {name: net.add_host(name) for name in ("redis", "s1", "s2", "w1", "w2", "w3")}
    frontier = start_redis(net, hosts["redis"], tmp / "redis")
    seeds = [start_site(net, hosts[s], tmp, pages, delay) for s in ("s1", "s2")]
    return frontier, seeds, hosts


def site_hits(seeds: list[str]) -> Counter[str]:
    hits: Counter[str] = Counter()
    for seed in seeds:
        with urllib.request.urlopen(seed + "_hits", timeout=5) as answer:
            for path, count in json.load(answer).items():
                hits[seed.rstrip("/") + path] = count
    return hits


def every_url(seeds: list[str], pages: int = PAGES) -> set[str]:
    return {seed + path for seed in seeds for path in ["", *(f"p{i}" for i in range(pages))]}


def merge(workers: list[CrawlWorker], tmp: Path) -> dict[str, dict[str, Any]]:
    """`ishan crawl merge` of the workers' dirs: {url: line}, asserting one line per URL."""
    out = tmp / "merged"
    dirs = sorted({str(w.out) for w in workers if (w.out / "manifest.jsonl").exists()})
    done = subprocess.run(
        [ISHAN, "crawl", "merge", *dirs, "-o", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    urls = Counter(line["url"] for line in lines)
    assert max(urls.values()) == 1, f"URLs with two lines after merge: {urls.most_common(3)}"
    for line in lines:
        if line.get("file"):
            assert (out / line["file"]).is_file(), line
    return {line["url"]: line for line in lines}


def crawl_figures(
    title: str,
    net: Network,
    seeds: list[str],
    records: dict[str, dict[str, Any]],
    recovery_s: float,
    *,
    pages: int = PAGES,
    notes: dict[str, Any] | None = None,
) -> tuple[Figures, Counter[str]]:
    """A crawl scenario's figures from the merged records and the sites' own hit counts
    (which it returns too): URLs, those no worker saved, pages fetched more than once."""
    saved = {url for url, line in records.items() if line.get("file")}
    hits = site_hits(seeds)
    urls = every_url(seeds, pages)
    figures = Figures(
        title,
        faults=net.faults,
        items=len(urls),
        item_kind="URLs",
        lost=len(urls - saved),
        twice=sum(1 for count in hits.values() if count > 1),
        recovery_s=recovery_s,
        notes=notes or {},
    )
    return figures, hits


def held_by(frontier: str, worker: str) -> int:
    client = redis.Redis.from_url(frontier, decode_responses=True, socket_timeout=2)
    try:
        holders: list[str] = client.hvals(HOLDER)  # type: ignore[assignment]
        return sum(1 for info in holders if info.split("\t")[0] == worker)
    finally:
        client.close()


def test_a_worker_cut_from_redis_longer_than_its_lease_loses_nothing(
    net: Network, tmp_path: Path
) -> None:
    frontier, seeds, hosts = build(net, tmp_path, delay=1.0)
    timing = ["--lease", "2", "--heartbeat", "0.4", "--frontier-timeout", "30"]
    names = ("w1", "w2", "w3")
    workers = [start_worker(net, hosts[w], frontier, seeds, tmp_path, *timing) for w in names]
    w1 = workers[0]
    wait_until(lambda: held_by(frontier, "w1") >= 2, 30, what="w1 holding leases")
    net.cut(hosts["w1"], hosts["redis"])
    time.sleep(5)  # two and a half leases: the others take w1's URLs over
    assert w1.process.poll() is None, w1.errors()
    net.heal(hosts["w1"], hosts["redis"])
    clock = Clock()
    codes = [worker.finish() for worker in workers]
    recovery = clock.since()
    records = merge(workers, tmp_path)
    refused = [e["url"] for e in w1.events("ack_refused")]
    late = [e["url"] for e in w1.events("ack_late")]
    figures, hits = crawl_figures(
        "crawl: a worker cut from Redis for 2.5 leases",
        net,
        seeds,
        records,
        recovery,
        notes={"acks refused": len(refused), "late acks counted": len(late)},
    )
    figures.show()
    assert codes == [0, 0, 0], f"{figures.line()}; {[w.errors()[-300:] for w in workers]}"
    assert figures.lost == 0, figures.line()
    assert refused, f"w1 acknowledged nothing another worker had taken: {figures.line()}"
    for url in refused:  # fenced off: another worker holds its line
        assert records[url]["worker"] != "w1" and hits[url] >= 2, (url, records[url])
    assert w1.events("frontier_lost") and w1.events("frontier_back"), figures.line()


def test_a_late_acknowledgement_counts_while_nobody_else_took_the_url(
    net: Network, tmp_path: Path
) -> None:
    # --delay 8: after w1's first claim on each site, neither site may start another request
    # for 8 s, so the URLs w2 reaps from w1's expired leases wait in the queue, untaken
    frontier, seeds, hosts = build(net, tmp_path, delay=1.0, pages=2)
    timing = ["--lease", "1", "--heartbeat", "0.2", "--frontier-timeout", "20", "--delay", "8"]
    w1 = start_worker(net, hosts["w1"], frontier, seeds, tmp_path, *timing)
    wait_until(
        lambda: held_by(frontier, "w1") == 2,
        30,
        what="w1 holding both start pages",
        process=w1.process,
    )
    net.cut(hosts["w1"], hosts["redis"])
    w2 = start_worker(net, hosts["w2"], frontier, seeds, tmp_path, *timing)
    time.sleep(2.5)  # w1's leases expire; w2's claims put its URLs back in the queue
    net.heal(hosts["w1"], hosts["redis"])
    clock = Clock()
    codes = [w1.finish(), w2.finish()]
    recovery = clock.since()
    records = merge([w1, w2], tmp_path)
    late = [e["url"] for e in w1.events("ack_late")]
    figures, hits = crawl_figures(
        "crawl: a worker cut from Redis past its lease, nobody taking its URLs",
        net,
        seeds,
        records,
        recovery,
        pages=2,
        notes={"late acks counted": len(late), "acks refused": len(w1.events("ack_refused"))},
    )
    figures.show()
    assert codes == [0, 0], f"{figures.line()}; {w1.errors()[-300:]} {w2.errors()[-300:]}"
    assert figures.lost == 0, figures.line()
    assert sorted(late) == sorted(seeds), figures.line()
    for url in late:  # counted: w1's copy is the crawl's, and nobody fetched it again
        assert records[url]["worker"] == "w1" and hits[url] == 1, (url, records[url])
    assert figures.twice == 0, figures.line()


def test_redis_cut_from_every_worker_shorter_than_the_frontier_timeout(
    net: Network, tmp_path: Path
) -> None:
    frontier, seeds, hosts = build(net, tmp_path, delay=0.3)
    timing = ["--lease", "20", "--heartbeat", "1", "--frontier-timeout", "8"]
    names = ("w1", "w2", "w3")
    workers = [start_worker(net, hosts[w], frontier, seeds, tmp_path, *timing) for w in names]
    wait_until(lambda: sum(held_by(frontier, w) for w in names) >= 3, 30, what="workers at work")
    net.isolate(hosts["redis"])
    time.sleep(4)  # half the frontier timeout
    assert all(w.process.poll() is None for w in workers), [w.errors() for w in workers]
    net.heal_all()
    clock = Clock()
    codes = [worker.finish() for worker in workers]
    recovery = clock.since()
    records = merge(workers, tmp_path)
    figures, _ = crawl_figures(
        "crawl: Redis cut from all workers for half --frontier-timeout",
        net,
        seeds,
        records,
        recovery,
    )
    figures.show()
    assert codes == [0, 0, 0], f"{figures.line()}; {[w.errors()[-300:] for w in workers]}"
    assert figures.lost == 0, figures.line()
    paused = [w for w in workers if w.events("frontier_lost") and w.events("frontier_back")]
    assert len(paused) == 3, f"not every worker paused and went on: {figures.line()}"


def test_redis_cut_longer_than_the_frontier_timeout_then_a_restart(
    net: Network, tmp_path: Path
) -> None:
    frontier, seeds, hosts = build(net, tmp_path, delay=0.3)
    timing = ["--lease", "3", "--heartbeat", "0.5", "--frontier-timeout", "3"]
    names = ("w1", "w2", "w3")
    workers = [start_worker(net, hosts[w], frontier, seeds, tmp_path, *timing) for w in names]
    wait_until(lambda: sum(held_by(frontier, w) for w in names) >= 3, 30, what="workers at work")
    net.isolate(hosts["redis"])
    codes = [worker.finish(timeout=30) for worker in workers]
    for worker in workers:  # one line each, naming the frontier and what to do
        lines = [line for line in worker.errors().splitlines() if line.strip()]
        assert len(lines) == 1 and "cannot reach the frontier" in lines[0], worker.errors()
    net.heal_all()
    clock = Clock()
    again = [start_worker(net, hosts[w], frontier, seeds, tmp_path, *timing) for w in names]
    codes += [worker.finish() for worker in again]
    recovery = clock.since()
    records = merge(again, tmp_path)
    figures, _ = crawl_figures(
        "crawl: Redis cut from all workers past --frontier-timeout, then a restart",
        net,
        seeds,
        records,
        recovery,
    )
    figures.show()
    assert codes == [1, 1, 1, 0, 0, 0], figures.line()
    assert figures.lost == 0, figures.line()
