"""Benchmark: `ishan crawl` workers on a shared Redis frontier vs one process vs scrapy-redis.

Serves eight copies of the Python 3.11 documentation (Debian's python3.11-doc, about 530
HTML pages each) with nginx on eight ports, and crawls them all:
  (a) one `ishan crawl` process with the eight start URLs (the local frontier);
  (b) two and four `ishan crawl --frontier` workers sharing one redis-server;
  (c) scrapy-redis with the same worker counts (a RedisSpider that follows same-host links).
Then the same on bench/crawl.py's generated 100,000-URL site (3,000 pages fetched, some
60,000 URLs seen), a SIGKILL of one of two workers mid-crawl of a generated 1,000-page site
(pages lost, beside scrapy-redis'), and a latency-bound site (tiny pages, each answered
after 50 ms; `-c 2` per worker). scrapy-redis makes a synchronous Redis round trip for every
link it finds, and the docs' index pages hold tens of thousands: on the docs it runs for its
first --scrapy-pages pages (at most 90 s).

Printed per run: pages, pages/s (from launch to the last page saved), CPU ms per page (all
workers' user+sys), peak RSS of the largest worker, Redis memory per URL seen (peak
used_memory during the run minus before, over the URLs in the dedupe set; after one warm-up
crawl) and the dedupe set's own bytes per URL. Each figure is the median of its own over
--rounds; ratios are against runs of the same invocation. The last line says how much CPU
the shared machine gave: two CPU-bound processes together vs one.
Not a test; CI does not run it.

Prerequisites (Debian/Ubuntu, as root):
    apt-get update && apt-get install -y nginx-light redis-server time python3.11-doc
    pip install -e ".[crawl,bench]"          # ishan crawl, scrapy, scrapy-redis

Usage:
    .venv/bin/python bench/crawl_distributed.py [--rounds 3] [--scrapy-pages 300]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from _sites import DOCROOT, TREE_SERVER, check_prerequisites, free_port, nginx, python_site

SITES = 8
# Tiny pages answered after 50 ms: /p/N links to /p/20N+1 .. /p/20N+20, PAGES pages in all.
SLOW_SERVER = TREE_SERVER.replace(
    "    def do_GET(self):\n", "    def do_GET(self):\n        time.sleep(0.05)\n"
).replace("import sys\n", "import sys\nimport time\n")

SPIDER = '''\
import hashlib
import pathlib

from scrapy.linkextractors import LinkExtractor
from scrapy_redis.spiders import RedisSpider


class SharedSpider(RedisSpider):
    """Start URLs from Redis; follow every link to the page's own host; save each page."""

    name = "bench"

    def __init__(self, out, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.out = pathlib.Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.urls = open(self.out / "urls.txt", "a")
        self.links = LinkExtractor()

    def parse(self, response):
        name = hashlib.sha256(response.url.encode()).hexdigest()[:16]
        (self.out / f"{name}.html").write_bytes(response.body)
        self.urls.write(response.url + "\\n")
        self.urls.flush()
        host = response.url.split("/", 3)[2]
        for link in self.links.extract_links(response):
            if link.url.split("/", 3)[2] == host:
                yield response.follow(link.url, self.parse)
'''


@dataclass
class Run:
    """One crawl by one or more processes."""

    pages: int
    seconds: float  # launch to the last page saved
    cpu_s: float  # user + sys of every worker
    rss_mb: float  # the largest worker's peak
    redis_bytes: int = 0  # peak used_memory minus before
    seen: int = 0  # URLs in the dedupe set
    dedupe_bytes: int = 0
    urls: set[str] = field(default_factory=set)

    @property
    def rate(self) -> float:
        return self.pages / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_s / max(self.pages, 1)


# -- servers ---------------------------------------------------------------------------------


class Redis:
    """A redis-server of the benchmark's own (no persistence) and a used_memory sampler."""

    def __init__(self, tmp: Path) -> None:
        import redis

        self.port = free_port()
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(tmp), "--loglevel", "warning"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._peak = 0
        self._sampling = False

    def used(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    @contextlib.contextmanager
    def sampled(self) -> Iterator[dict[str, int]]:
        """Yields {'before', 'peak'}: used_memory before the block, its peak during it."""
        self.client.flushall()
        figures = {"before": self.used(), "peak": 0}
        self._sampling = True

        def sample() -> None:
            while self._sampling:
                figures["peak"] = max(figures["peak"], self.used())
                time.sleep(0.02)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield figures
        finally:
            self._sampling = False
            thread.join()
            figures["peak"] = max(figures["peak"], self.used())

    def bytes_of(self, pattern: str) -> int:
        return sum(
            int(self.client.memory_usage(key) or 0) for key in self.client.scan_iter(pattern)
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# -- processes -------------------------------------------------------------------------------


class Timed:
    """A process under GNU time: its CPU seconds and peak RSS once it ended."""

    def __init__(self, cmd: list[str], tmp: Path) -> None:
        self.report = tempfile.NamedTemporaryFile("r", dir=tmp, suffix=".time")  # noqa: SIM115
        timed = ["/usr/bin/time", "-q", "-f", "%U %S %M", "-o", self.report.name, *cmd]
        self.process = subprocess.Popen(
            timed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def wait(self, timeout: float = 900) -> tuple[float, float]:
        """(CPU seconds, peak RSS MB); (0, 0) for a process that was killed."""
        self.process.wait(timeout=timeout)
        fields = self.report.read().split()
        if len(fields) < 3 or not fields[-1].isdigit():
            return 0.0, 0.0
        return float(fields[-3]) + float(fields[-2]), int(fields[-1]) / 1024

    def kill(self) -> None:
        """SIGKILL the crawler (and GNU time: the session of both)."""
        os.killpg(self.process.pid, signal.SIGKILL)


def wait_lines(path: Path, count: int, proc: Timed) -> None:
    """Until `path` has `count` lines (or its writer ended)."""
    while proc.process.poll() is None:
        if path.exists() and len(path.read_bytes().splitlines()) >= count:
            return
        time.sleep(0.02)


def finish(procs: list[Timed], launched: float, outputs: list[Path]) -> tuple[float, float, float]:
    """Wait for every process; (seconds from launch to the last save, CPU s, largest RSS)."""
    cpu, rss = 0.0, 0.0
    for proc in procs:
        seconds, peak = proc.wait()
        cpu, rss = cpu + seconds, max(rss, peak)
    last = max((p.stat().st_mtime for p in outputs if p.exists()), default=time.time())
    return max(last - launched, 1e-3), cpu, rss


def ishan_urls(dirs: list[Path]) -> set[str]:
    urls = set()
    for path in dirs:
        manifest = path / "manifest.jsonl"
        if manifest.exists():
            for line in manifest.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if record.get("file"):
                        urls.add(record["url"])
    return urls


def run_ishan(
    ishan: str,
    seeds: list[str],
    work: Path,
    workers: int,
    redis: Redis | None,
    extra: list[str],
    kill_after: int = 0,
) -> Run:
    """One process (no redis) or `workers` workers on a fresh frontier."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    base = [ishan, "crawl", *seeds, "--depth", "-1", "-q", *extra]
    memory = redis.sampled() if redis is not None else contextlib.nullcontext({})
    with memory as figures:
        launched = time.time()
        dirs = [work / f"w{i}" for i in range(workers)]
        procs = []
        for i, out in enumerate(dirs):
            shared = ["--frontier", redis.url, "--worker-id", f"w{i}"] if redis else []
            procs.append(Timed([*base, "-o", str(out), *shared], work))
        if kill_after:
            wait_lines(dirs[0] / "manifest.jsonl", kill_after, procs[0])
            procs[0].kill()
        seconds, cpu, rss = finish(procs, launched, [d / "manifest.jsonl" for d in dirs])
        seen = 0
        dedupe = 0
        if redis is not None:
            meta = next(redis.client.scan_iter("ishan:crawl:*:meta"))
            seen = int(redis.client.hget(meta, "n") or 0)
            dedupe = redis.bytes_of(meta[: -len("meta")] + "seen:*")
    urls = ishan_urls(dirs)
    return Run(
        pages=len(urls),
        seconds=seconds,
        cpu_s=cpu,
        rss_mb=rss,
        redis_bytes=figures.get("peak", 0) - figures.get("before", 0),
        seen=seen,
        dedupe_bytes=dedupe,
        urls=urls,
    )


def run_scrapy(
    spider: Path,
    seeds: list[str],
    work: Path,
    workers: int,
    redis: Redis,
    pages: int = 0,
    kill_after: int = 0,
) -> Run:
    """`workers` scrapy-redis processes; each closes after 2 s idle (or `pages`/workers)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    settings = {
        "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
        "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
        "SCHEDULER_PERSIST": "True",
        "REDIS_URL": redis.url,
        "MAX_IDLE_TIME_BEFORE_CLOSE": "2",
        "ROBOTSTXT_OBEY": "True",
        "LOG_LEVEL": "ERROR",
        "CONCURRENT_REQUESTS": "16",
        "CONCURRENT_REQUESTS_PER_DOMAIN": "8",
        "TELNETCONSOLE_ENABLED": "False",
    }
    if pages:
        settings["CLOSESPIDER_PAGECOUNT"] = str(max(1, pages // workers))
        settings["CLOSESPIDER_TIMEOUT"] = "90"
    with redis.sampled() as figures:
        redis.client.lpush("bench:start_urls", *seeds)
        launched = time.time()
        dirs = [work / f"s{i}" for i in range(workers)]
        procs = []
        for out in dirs:
            cmd = [sys.executable, "-m", "scrapy", "runspider", str(spider), "-a", f"out={out}"]
            for name, value in settings.items():
                cmd += ["-s", f"{name}={value}"]
            procs.append(Timed(cmd, work))
        if kill_after:
            wait_lines(dirs[0] / "urls.txt", kill_after, procs[0])
            procs[0].kill()
        seconds, cpu, rss = finish(procs, launched, [d / "urls.txt" for d in dirs])
        seen = int(redis.client.scard("bench:dupefilter"))
        dedupe = redis.bytes_of("bench:dupefilter")
    urls = set()
    for path in dirs:
        if (path / "urls.txt").exists():
            urls |= set((path / "urls.txt").read_text().split())
    return Run(
        pages=len(urls),
        seconds=seconds,
        cpu_s=cpu,
        rss_mb=rss,
        redis_bytes=figures["peak"] - figures["before"],
        seen=seen,
        dedupe_bytes=dedupe,
        urls=urls,
    )


# -- report ----------------------------------------------------------------------------------


def median_run(runs: list[Run]) -> Run:
    """The run of median pages/s (for its URL set)."""
    return sorted(runs, key=lambda run: run.rate)[len(runs) // 2]


def rate(runs: list[Run]) -> float:
    return statistics.median(run.rate for run in runs)


def row(label: str, runs: list[Run], baseline: float | None = None) -> str:
    """Each figure the median of its own over the rounds."""
    pages = statistics.median(run.pages for run in runs)
    ratio = f"{rate(runs) / baseline:6.2f}x" if baseline else "       "
    cpu = statistics.median(run.cpu_ms for run in runs)
    rss = statistics.median(run.rss_mb for run in runs)
    seen = [run for run in runs if run.seen]
    memory = dedupe = "-"
    if seen:
        memory = f"{statistics.median(run.redis_bytes / run.seen for run in seen):.0f}"
        dedupe = f"{statistics.median(run.dedupe_bytes / run.seen for run in seen):.1f}"
    return (
        f"{label:<26} {pages:>6.0f} {rate(runs):>8.1f} {ratio} {cpu:>7.2f} {rss:>8.1f} "
        f"{memory:>8} {dedupe:>7}"
    )


def cpu_parallelism() -> float:
    """How much faster two CPU-bound processes finish together than one after the other:
    2.0 with two free cores, 1.0 with one (the machine is shared)."""
    spin = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(8_000_000): x += i\n"

    def wall(count: int) -> float:
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(count)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - started

    one = statistics.median(wall(1) for _ in range(3))
    two = statistics.median(wall(2) for _ in range(3))
    return 2 * one / two


HEADER = (
    f"{'run':<26} {'pages':>6} {'pages/s':>8} {'ratio':>7} {'CPU ms':>7} {'RSS MB':>8} "
    f"{'B/URL':>8} {'dedupe':>7}"
)


def section(title: str, rows: list[str]) -> None:
    print()
    print(title)
    print(HEADER)
    print("-" * len(HEADER))
    for line in rows:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each ishan run")
    parser.add_argument("--scrapy-pages", type=int, default=300, help="scrapy-redis docs pages")
    parser.add_argument("--docroot", type=Path, default=DOCROOT)
    parser.add_argument("--slow-pages", type=int, default=1200, help="latency-bound site size")
    parser.add_argument("--tree-fetch", type=int, default=3000, help="pages of the 100k site")
    args = parser.parse_args()
    ishan = check_prerequisites(
        args.docroot, ["nginx", "redis-server"], ["scrapy", "scrapy_redis", "redis"]
    )
    started = time.monotonic()
    load = os.getloadavg()[0]
    parallel = cpu_parallelism()
    with tempfile.TemporaryDirectory(prefix="ishan-bench-shared-") as tmp_name:
        tmp = Path(tmp_name)
        spider = tmp / "shared_spider.py"
        spider.write_text(SPIDER)
        redis = Redis(tmp)
        try:
            report_docs(ishan, spider, tmp, redis, args)
            report_tree(ishan, spider, tmp, redis, args)
            report_kill(ishan, spider, tmp, redis)
            report_latency(ishan, tmp, redis, args)
        finally:
            redis.stop()
    print()
    print(
        f"cpus: {os.cpu_count()}; load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end; two CPU-bound processes ran {parallel:.2f}x "
        f"as fast as one at the start, {cpu_parallelism():.2f}x at the end (2.00: two free "
        f"cores); {time.monotonic() - started:.0f} s in all"
    )


def report_docs(
    ishan: str, spider: Path, tmp: Path, redis: Redis, args: argparse.Namespace
) -> None:
    runs: dict[str, list[Run]] = {}
    with nginx(tmp, args.docroot, SITES, workers=2, connections=4096, sendfile=True) as seeds:
        # a fresh redis-server keeps some 900 KB after its first crawl (scripts and more that
        # FLUSHALL leaves): one crawl first, so that B/URL counts what each crawl adds
        run_ishan(ishan, seeds[:1], tmp / "warm", 2, redis, [])
        for _ in range(args.rounds):
            runs.setdefault("one", []).append(run_ishan(ishan, seeds, tmp / "a", 1, None, []))
            for workers in (2, 4):
                run = run_ishan(ishan, seeds, tmp / "b", workers, redis, [])
                runs.setdefault(f"ishan {workers}", []).append(run)
        for workers in (2, 4):
            run = run_scrapy(spider, seeds, tmp / "c", workers, redis, args.scrapy_pages)
            runs[f"scrapy {workers}"] = [run]
    one = rate(runs["one"])
    section(
        f"{SITES} copies of the Python docs ({args.docroot}), nginx; medians of "
        f"{args.rounds} rounds (scrapy-redis: 1 round, first {args.scrapy_pages} pages or 90 s)",
        [
            row("ishan, 1 process", runs["one"], one),
            row("ishan, 2 workers (redis)", runs["ishan 2"], one),
            row("ishan, 4 workers (redis)", runs["ishan 4"], one),
            row("scrapy-redis, 2 workers", runs["scrapy 2"], one),
            row("scrapy-redis, 4 workers", runs["scrapy 4"], one),
        ],
    )
    print()
    print(f"2 workers vs 1 process:      {rate(runs['ishan 2']) / one:.2f}x (target >= 1.4x)")
    for workers in (2, 4):
        ours, theirs = rate(runs[f"ishan {workers}"]), rate(runs[f"scrapy {workers}"])
        print(f"ishan vs scrapy-redis, {workers} workers: {ours / theirs:.2f}x (target >= 5x)")
    expected = median_run(runs["one"]).urls
    for workers in (2, 4):
        differ = len(median_run(runs[f"ishan {workers}"]).urls ^ expected)
        print(f"{workers} workers saved the same URLs as 1 process: {differ or 'yes'}")


def report_tree(
    ishan: str, spider: Path, tmp: Path, redis: Redis, args: argparse.Namespace
) -> None:
    fetch = args.tree_fetch
    with python_site(tmp, TREE_SERVER, 100_000) as seed:
        limit = ["--max-pages", str(fetch)]
        rows = {"one": [run_ishan(ishan, [seed], tmp / "a", 1, None, limit)]}
        for workers in (2, 4):
            rows[f"ishan {workers}"] = [run_ishan(ishan, [seed], tmp / "b", workers, redis, limit)]
        for workers in (2, 4):
            rows[f"scrapy {workers}"] = [
                run_scrapy(spider, [seed], tmp / "c", workers, redis, fetch)
            ]
    one = rows["one"][0].rate
    section(
        f"the generated 100,000-URL site of bench/crawl.py (a Python server), {fetch} pages "
        "fetched; 1 round",
        [
            row("ishan, 1 process", rows["one"], one),
            row("ishan, 2 workers (redis)", rows["ishan 2"], one),
            row("ishan, 4 workers (redis)", rows["ishan 4"], one),
            row("scrapy-redis, 2 workers", rows["scrapy 2"], one),
            row("scrapy-redis, 4 workers", rows["scrapy 4"], one),
        ],
    )
    print(
        "(one host: --per-host-concurrency 8 holds for all workers together, so more workers "
        "do not add speed here; this site measures Redis memory)"
    )
    for label in ("ishan 4", "scrapy 4"):
        run = rows[label][0]
        print(
            f"{label}: Redis {run.redis_bytes / run.seen:.0f} B per URL seen ({run.seen} seen; "
            f"target <= 250 for ishan), dedupe set {run.dedupe_bytes / run.seen:.1f} B per URL "
            "(target <= 64 for ishan)"
        )


def report_kill(ishan: str, spider: Path, tmp: Path, redis: Redis) -> None:
    """Two workers on a generated 1,000-page site; the first is SIGKILLed after 200 pages."""
    with python_site(tmp, TREE_SERVER, 1000) as seed_url:
        seed = [seed_url]
        full_ishan = run_ishan(ishan, seed, tmp / "a", 1, None, []).urls
        killed_ishan = run_ishan(ishan, seed, tmp / "b", 2, redis, [], kill_after=200)
        full_scrapy = run_scrapy(spider, seed, tmp / "c", 2, redis).urls
        killed_scrapy = run_scrapy(spider, seed, tmp / "d", 2, redis, kill_after=200)
    print()
    print(
        "SIGKILL of one of two workers after 200 pages of a generated 1,000-page site (pages "
        "lost: pages of a full crawl that no worker saved)"
    )
    print(
        f"ishan crawl:  {len(full_ishan - killed_ishan.urls)} lost of {len(full_ishan)} (target 0)"
    )
    print(f"scrapy-redis: {len(full_scrapy - killed_scrapy.urls)} lost of {len(full_scrapy)}")


def report_latency(ishan: str, tmp: Path, redis: Redis, args: argparse.Namespace) -> None:
    rounds = max(1, args.rounds - 1)
    runs: dict[int, list[Run]] = {}
    with python_site(tmp, SLOW_SERVER, args.slow_pages) as seed:
        for _ in range(rounds):
            for workers in (1, 2, 4):
                run = run_ishan(ishan, [seed], tmp / "b", workers, redis, ["-c", "2"])
                runs.setdefault(workers, []).append(run)
    one = rate(runs[1])
    section(
        f"latency-bound: {args.slow_pages} tiny pages, each answered after 50 ms; -c 2 per "
        f"worker; medians of {rounds} rounds",
        [row(f"ishan, {n} worker{'s' if n > 1 else ''} (redis)", runs[n], one) for n in (1, 2, 4)],
    )
    print()
    print(f"4 workers vs 1 worker: {rate(runs[4]) / one:.2f}x (target >= 3.2x)")


if __name__ == "__main__":
    main()
