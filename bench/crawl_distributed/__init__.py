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

The package: `runs` (a crawl by `ishan crawl` processes under GNU time, the benchmark's
redis-server), `baselines` (scrapy-redis), `workloads` (the four sites and what runs on
each) and `report` (the tables); `__main__` runs them.

Usage:
    .venv/bin/python -m bench.crawl_distributed [--rounds 3] [--scrapy-pages 300]
"""
