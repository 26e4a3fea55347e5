"""Benchmark: `ishan crawl` vs `wget -r` vs a plain Scrapy CrawlSpider on a real docs site.

Serves the Python 3.11 documentation from the Debian package python3.11-doc (about 530 HTML
pages, 50 MB of HTML) with nginx on 127.0.0.1, crawls it completely with each tool in the same
run, and prints pages found, wall time and peak RSS (medians over --runs), the ratios, and
whether each tool found the same HTML page set as wget. Not a test; not run by CI.

Prerequisites (Debian/Ubuntu, as root):
    apt-get update && apt-get install -y nginx-light wget time python3.11-doc
    pip install -e ".[crawl,bench]"          # ishan crawl and scrapy

Usage:
    .venv/bin/python bench/crawl.py [--runs 3] [--scrapy-runs 1] [--docroot DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DOCROOT = Path("/usr/share/doc/python3.11/html")
INSTALL_HINT = """\
missing prerequisites: {missing}
install them with:
    apt-get update && apt-get install -y nginx-light wget time python3.11-doc
    pip install -e ".[crawl,bench]"
"""

NGINX_CONF = """\
worker_processes 1;
daemon off;
error_log {tmp}/nginx-error.log;
pid {tmp}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  include /etc/nginx/mime.types;
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    index index.html;
  }}
}}
"""

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


# A site of 100,000 pages: /p/N links to /p/20N+1 .. /p/20N+20. Served by a subprocess.
TREE_SERVER = """\
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGES = int(sys.argv[1])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without TCP_NODELAY, Nagle and delayed ACKs
    # hold the body some 40 ms on loopback
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/robots.txt":
            body = b"User-agent: *\\nAllow: /\\n"
        else:
            n = int(self.path.rsplit("/", 1)[-1] or 0)
            kids = range(20 * n + 1, min(20 * n + 21, PAGES))
            links = "".join(f'<li><a href="/p/{k}">page {k}</a></li>' for k in kids)
            body = f"<!doctype html><title>{n}</title><ul>{links}</ul>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer.request_queue_size = 256
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@dataclass
class Run:
    wall: float
    rss_mb: float
    pages: set[str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def check_prerequisites(docroot: Path) -> str:
    """The ishan executable; exits with install instructions when something is missing."""
    missing = [tool for tool in ("nginx", "wget") if shutil.which(tool) is None]
    if not Path("/usr/bin/time").exists():
        missing.append("time (GNU time, for peak RSS)")
    if not (docroot / "index.html").exists():
        missing.append(f"python3.11-doc ({docroot}/index.html)")
    if importlib.util.find_spec("scrapy") is None:
        missing.append("scrapy (the bench extra)")
    ishan = Path(sys.executable).with_name("ishan")
    if not ishan.exists():
        missing.append("ishan (pip install -e '.[crawl]')")
    if missing:
        sys.stderr.write(INSTALL_HINT.format(missing=", ".join(missing)))
        raise SystemExit(1)
    return str(ishan)


def start_nginx(tmp: Path, root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, root=root))
    nginx = shutil.which("nginx") or "nginx"
    process = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp)])
    seed = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(seed, timeout=1).read()
            return process, seed
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise SystemExit(f"nginx did not start; see {tmp}/nginx-error.log") from None
            time.sleep(0.1)


def frontier_memory(
    ishan: str, tmp: Path, pages: int, fetch: int
) -> list[tuple[str, int, int, float]]:
    """Peak RSS of `ishan crawl` fetching `fetch` pages of a `pages`-page site, for several
    --memory-queue sizes: (setting, URLs left queued, failed fetches, peak RSS MB)."""
    script = tmp / "tree_server.py"
    script.write_text(TREE_SERVER)
    server = subprocess.Popen(
        [sys.executable, str(script), str(pages)], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    seed = f"http://127.0.0.1:{server.stdout.readline().strip()}/p/0"
    rows = []
    try:
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
    finally:
        server.terminate()
        server.wait(timeout=10)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of ishan and wget")
    parser.add_argument("--scrapy-runs", type=int, default=1, help="runs of Scrapy (slow)")
    parser.add_argument("--docroot", type=Path, default=DOCROOT)
    parser.add_argument("--tree-pages", type=int, default=100_000, help="frontier memory site")
    parser.add_argument("--tree-fetch", type=int, default=5_000, help="pages fetched of it")
    args = parser.parse_args()
    ishan = check_prerequisites(args.docroot)

    with tempfile.TemporaryDirectory(prefix="ishan-bench-crawl-") as tmp_name:
        tmp = Path(tmp_name)
        spider = tmp / "docs_spider.py"
        spider.write_text(SPIDER)
        nginx, seed = start_nginx(tmp, args.docroot)
        results: dict[str, list[Run]] = {"ishan crawl": [], "wget -r": [], "scrapy": []}
        try:
            for index in range(max(args.runs, args.scrapy_runs)):
                work = tmp / f"run{index}"
                work.mkdir()
                if index < args.runs:
                    results["ishan crawl"].append(run_ishan(ishan, seed, work))
                    results["wget -r"].append(run_wget(seed, work))
                if index < args.scrapy_runs:
                    results["scrapy"].append(run_scrapy(spider, seed, work))
                shutil.rmtree(work)
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
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
