"""The shared-crawl benchmark's tables: each figure the median of its own over the rounds,
ratios to runs of the same invocation."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from .runs import Run
from .workloads import SITES


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


def docs(runs: dict[str, list[Run]], args: argparse.Namespace) -> None:
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


def tree(rows: dict[str, list[Run]], args: argparse.Namespace) -> None:
    fetch = args.tree_fetch
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


def kill(runs: dict[str, tuple[set[str], Run]]) -> None:
    (full_ishan, killed_ishan), (full_scrapy, killed_scrapy) = runs["ishan"], runs["scrapy"]
    print()
    print(
        "SIGKILL of one of two workers after 200 pages of a generated 1,000-page site (pages "
        "lost: pages of a full crawl that no worker saved)"
    )
    print(
        f"ishan crawl:  {len(full_ishan - killed_ishan.urls)} lost of {len(full_ishan)} (target 0)"
    )
    print(f"scrapy-redis: {len(full_scrapy - killed_scrapy.urls)} lost of {len(full_scrapy)}")


def latency(runs: dict[int, list[Run]], args: argparse.Namespace) -> None:
    rounds = max(1, args.rounds - 1)
    one = rate(runs[1])
    section(
        f"latency-bound: {args.slow_pages} tiny pages, each answered after 50 ms; -c 2 per "
        f"worker; medians of {rounds} rounds",
        [row(f"ishan, {n} worker{'s' if n > 1 else ''} (redis)", runs[n], one) for n in (1, 2, 4)],
    )
    print()
    print(f"4 workers vs 1 worker: {rate(runs[4]) / one:.2f}x (target >= 3.2x)")
