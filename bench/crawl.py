"""Benchmark: `ishan crawl` vs `wget -r` vs a plain Scrapy CrawlSpider on a real docs site.

Serves the Python 3.11 documentation from the Debian package python3.11-doc (about 530 HTML
pages, 50 MB of HTML) with nginx on 127.0.0.1, crawls it completely with each tool in the same
run, and prints pages found, wall time and peak RSS (medians over --runs), the ratios, and
whether each tool found the same HTML page set as wget. Not a test; not run by CI.

Prerequisites (Debian/Ubuntu, as root):
    apt-get update && apt-get install -y nginx-light wget time python3.11-doc
    pip install -e ".[crawl,bench]"          # ishan crawl and scrapy

Usage:
    .venv/bin/python -m bench.crawl [--runs 3] [--scrapy-runs 1] [--docroot DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench._sites import DOCROOT, TREE_SERVER, check_prerequisites, nginx, python_site

SPIDER = '''\
import hashlib
import pathlib

from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule


class DocsSpider(CrawlSpider):
    """A plain CrawlSpider: follow every same-host link, save each page."""

    name = "docs"
    rules = (Rule(LinkExtractor(), callback="parse_item", follow=True),)

    def __init__(self, start, out, *args, **kwargs):
        self.start_urls = [start]
        self.allowed_domains = ["127.0.0.1"]
        self.out = pathlib.Path(out)
        self.urls = open(self.out / "urls.txt", "a")
        super().__init__(*args, **kwargs)

    def parse_start_url(self, response):
        return self.parse_item(response)

    def parse_item(self, response):
        name = hashlib.sha256(response.url.encode()).hexdigest()[:16]
        (self.out / f"{name}.html").write_bytes(response.body)
        self.urls.write(response.url + "\\n")
        self.urls.flush()
'''


@dataclass
class Run:
    wall: float
    rss_mb: float
    pages: set[str]


def measure(cmd: list[str]) -> tuple[float, float, int]:
    """Run a command; its wall time, peak RSS in MB and exit status.

    GNU time reports the peak RSS of the command itself (a child forked from this Python
    process would count the parent's pages it started with).
    """
    with tempfile.NamedTemporaryFile("r") as rss_file:
        timed = ["/usr/bin/time", "-q", "-f", "%M", "-o", rss_file.name, *cmd]
        started = time.perf_counter()
        code = subprocess.call(timed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        peak_kb = int(rss_file.read().split()[-1])
    return wall, peak_kb / 1024, code


def canonical(url: str) -> str:
    """Directory URLs and their index.html are one page (wget saves both as index.html)."""
    return url + "index.html" if url.endswith("/") else url


def run_ishan(ishan: str, seed: str, work: Path) -> Run:
    out = work / "ishan"
    wall, rss, code = measure([ishan, "crawl", seed, "-o", str(out), "--depth", "-1", "-q"])
    if code != 0:
        raise SystemExit(f"ishan crawl exited {code}")
    pages = set()
    for line in (out / "manifest.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["file"] and record["file"].endswith(".html"):
            pages.add(canonical(record["final_url"]))
    return Run(wall, rss, pages)


def run_wget(seed: str, work: Path) -> Run:
    out = work / "wget"
    cmd = ["wget", "-r", "-l", "inf", "-np", "-q", "-P", str(out), seed]
    wall, rss, code = measure(cmd)
    if code not in (0, 8):  # 8: some links answered 404, as the docs have one broken link
        raise SystemExit(f"wget exited {code}")
    root = next(out.iterdir())
    pages = {canonical(seed + str(path.relative_to(root))) for path in root.rglob("*.html")}
    return Run(wall, rss, pages)


def run_scrapy(spider: Path, seed: str, work: Path) -> Run:
    out = work / "scrapy"
    out.mkdir()
    cmd = [sys.executable, "-m", "scrapy", "runspider", str(spider), "-a", f"start={seed}"]
    cmd += ["-a", f"out={out}", "-s", "LOG_LEVEL=ERROR", "-s", "ROBOTSTXT_OBEY=True"]
    wall, rss, code = measure(cmd)
    if code != 0:
        raise SystemExit(f"scrapy exited {code}")
    pages = {
        canonical(u) for u in (out / "urls.txt").read_text().split() if u.endswith(("/", ".html"))
    }
    return Run(wall, rss, pages)


def frontier_memory(
    ishan: str, tmp: Path, pages: int, fetch: int
) -> list[tuple[str, int, int, float]]:
    """Peak RSS of `ishan crawl` fetching `fetch` pages of a `pages`-page site, for several
    --memory-queue sizes: (setting, URLs left queued, failed fetches, peak RSS MB)."""
    rows = []
    with python_site(tmp, TREE_SERVER, pages) as seed:
        for cap in (1_000_000, 50_000, 5_000):
            out = tmp / f"tree-{cap}"
            cmd = [ishan, "crawl", seed, "-o", str(out), "--depth", "-1", "-q"]
            cmd += ["--max-pages", str(fetch), "--memory-queue", str(cap)]
            _, rss, code = measure(cmd)
            if code != 0:
                raise SystemExit(f"ishan crawl exited {code} on the tree site")
            log = out / ".ishan-crawl" / "frontier.jsonl"
            queued = sum(1 for _ in log.open()) - fetch
            records = [json.loads(line) for line in (out / "manifest.jsonl").open()]
            failed = sum(1 for record in records if record["error"])
            label = "50000 (default)" if cap == 50_000 else str(cap)
            rows.append((label, queued, failed, rss))
            shutil.rmtree(out)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of ishan and wget")
    parser.add_argument("--scrapy-runs", type=int, default=1, help="runs of Scrapy (slow)")
    parser.add_argument("--docroot", type=Path, default=DOCROOT)
    parser.add_argument("--tree-pages", type=int, default=100_000, help="frontier memory site")
    parser.add_argument("--tree-fetch", type=int, default=5_000, help="pages fetched of it")
    args = parser.parse_args()
    ishan = check_prerequisites(args.docroot, ["nginx", "wget"], ["scrapy"])

    with tempfile.TemporaryDirectory(prefix="ishan-bench-crawl-") as tmp_name:
        tmp = Path(tmp_name)
        spider = tmp / "docs_spider.py"
        spider.write_text(SPIDER)
        results: dict[str, list[Run]] = {"ishan crawl": [], "wget -r": [], "scrapy": []}
        with nginx(tmp, args.docroot) as [seed]:
            for index in range(max(args.runs, args.scrapy_runs)):
                work = tmp / f"run{index}"
                work.mkdir()
                if index < args.runs:
                    results["ishan crawl"].append(run_ishan(ishan, seed, work))
                    results["wget -r"].append(run_wget(seed, work))
                if index < args.scrapy_runs:
                    results["scrapy"].append(run_scrapy(spider, seed, work))
                shutil.rmtree(work)
        report(results, seed, args)
        rows = frontier_memory(ishan, tmp, args.tree_pages, args.tree_fetch)
    print()
    print(
        f"frontier memory: {args.tree_fetch} pages fetched of a {args.tree_pages}-URL site "
        "(every page links to 20 new ones)"
    )
    print(f"{'--memory-queue':<16} {'URLs queued':>12} {'failed':>7} {'peak RSS MB':>12}")
    for label, queued, failed, rss in rows:
        print(f"{label:<16} {queued:>12} {failed:>7} {rss:>12.1f}")


def report(results: dict[str, list[Run]], seed: str, args: argparse.Namespace) -> None:
    results = {tool: runs for tool, runs in results.items() if runs}
    wall = {tool: statistics.median(r.wall for r in runs) for tool, runs in results.items()}
    rss = {tool: statistics.median(r.rss_mb for r in runs) for tool, runs in results.items()}
    reference = results["wget -r"][0].pages
    print(f"site: {args.docroot} served by nginx at {seed}")
    print(
        f"runs: ishan/wget {args.runs}, scrapy {args.scrapy_runs} (medians); cpus: {os.cpu_count()}"
    )
    print()
    header = (
        f"{'tool':<12} {'pages':>6} {'same as wget':>13} {'wall s':>8} {'peak RSS MB':>12} "
        f"{'wall vs ishan':>14}"
    )
    print(header)
    print("-" * len(header))
    for tool, runs in results.items():
        pages = runs[0].pages
        same = "yes" if pages == reference else f"{len(pages ^ reference)} differ"
        ratio = wall[tool] / wall["ishan crawl"]
        print(
            f"{tool:<12} {len(pages):>6} {same:>13} {wall[tool]:>8.2f} {rss[tool]:>12.1f} "
            f"{ratio:>13.2f}x"
        )
    print()
    print(f"ishan vs wget:   {wall['wget -r'] / wall['ishan crawl']:.2f}x faster (target >= 1.0x)")
    if "scrapy" in wall:
        scrapy_ratio = wall["scrapy"] / wall["ishan crawl"]
        print(f"ishan vs scrapy: {scrapy_ratio:.2f}x faster (target >= 5x)")
    print(f"ishan peak RSS:  {rss['ishan crawl']:.1f} MB (target < 150 MB)")
    for tool, runs in results.items():
        extra = sorted(runs[0].pages - reference)[:3]
        lacking = sorted(reference - runs[0].pages)[:3]
        if extra or lacking:
            print(f"{tool}: not in wget's set {extra}, missing {lacking}")


if __name__ == "__main__":
    main()
