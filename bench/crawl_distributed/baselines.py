"""The baseline of the shared-crawl benchmark: scrapy-redis, the same worker counts on the
same redis-server (a RedisSpider that follows same-host links and saves each page)."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from .runs import Redis, Run, Timed, finish, wait_lines

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
