"""The shared-crawl benchmark's workloads: each site, and the crawls run against it.

- `docs`: eight copies of the Python docs, nginx; one process, 2 and 4 workers, scrapy-redis;
- `tree`: the generated 100,000-URL site of bench/crawl.py, a fixed number of pages fetched;
- `kill`: a generated 1,000-page site, one of two workers SIGKILLed after 200 pages;
- `latency`: tiny pages each answered after 50 ms, 1, 2 and 4 workers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench._sites import TREE_SERVER, nginx, python_site

from .baselines import run_scrapy
from .runs import Redis, Run, run_ishan

SITES = 8
# Tiny pages answered after 50 ms: /p/N links to /p/20N+1 .. /p/20N+20, PAGES pages in all.
SLOW_SERVER = TREE_SERVER.replace(
    "    def do_GET(self):\n", "    def do_GET(self):\n        time.sleep(0.05)\n"
).replace("import sys\n", "import sys\nimport time\n")


def docs(
    ishan: str, spider: Path, tmp: Path, redis: Redis, args: argparse.Namespace
) -> dict[str, list[Run]]:
    """{"one", "ishan 2", "ishan 4": --rounds runs each; "scrapy 2", "scrapy 4": one run}."""
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
    return runs


def tree(
    ishan: str, spider: Path, tmp: Path, redis: Redis, args: argparse.Namespace
) -> dict[str, list[Run]]:
    """One run each, --tree-fetch pages of the 100,000-URL site."""
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
    return rows


def kill(ishan: str, spider: Path, tmp: Path, redis: Redis) -> dict[str, tuple[set[str], Run]]:
    """Two workers on a generated 1,000-page site; the first is SIGKILLed after 200 pages.
    {crawler: (the URLs of a full crawl, the killed run)}."""
    with python_site(tmp, TREE_SERVER, 1000) as seed_url:
        seed = [seed_url]
        full_ishan = run_ishan(ishan, seed, tmp / "a", 1, None, []).urls
        killed_ishan = run_ishan(ishan, seed, tmp / "b", 2, redis, [], kill_after=200)
        full_scrapy = run_scrapy(spider, seed, tmp / "c", 2, redis).urls
        killed_scrapy = run_scrapy(spider, seed, tmp / "d", 2, redis, kill_after=200)
    return {"ishan": (full_ishan, killed_ishan), "scrapy": (full_scrapy, killed_scrapy)}


def latency(ishan: str, tmp: Path, redis: Redis, args: argparse.Namespace) -> dict[int, list[Run]]:
    """{workers: runs}, max(1, --rounds - 1) rounds of 1, 2 and 4 workers, -c 2 each."""
    rounds = max(1, args.rounds - 1)
    runs: dict[int, list[Run]] = {}
    with python_site(tmp, SLOW_SERVER, args.slow_pages) as seed:
        for _ in range(rounds):
            for workers in (1, 2, 4):
                run = run_ishan(ishan, [seed], tmp / "b", workers, redis, ["-c", "2"])
                runs.setdefault(workers, []).append(run)
    return runs
