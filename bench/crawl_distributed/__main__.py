"""Run the shared-crawl benchmark: `python -m bench.crawl_distributed [options]` (see
bench/crawl_distributed/__init__.py)."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench._sites import DOCROOT, check_prerequisites

from . import __doc__ as DESCRIPTION
from . import report, workloads
from .baselines import SPIDER
from .runs import Redis


def main() -> None:
    parser = argparse.ArgumentParser(description=DESCRIPTION.split("\n", 1)[0])
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
    parallel = report.cpu_parallelism()
    with tempfile.TemporaryDirectory(prefix="ishan-bench-shared-") as tmp_name:
        tmp = Path(tmp_name)
        spider = tmp / "shared_spider.py"
        spider.write_text(SPIDER)
        redis = Redis(tmp)
        try:
            report.docs(workloads.docs(ishan, spider, tmp, redis, args), args)
            report.tree(workloads.tree(ishan, spider, tmp, redis, args), args)
            report.kill(workloads.kill(ishan, spider, tmp, redis))
            report.latency(workloads.latency(ishan, tmp, redis, args), args)
        finally:
            redis.stop()
    print()
    print(
        f"cpus: {os.cpu_count()}; load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end; two CPU-bound processes ran {parallel:.2f}x "
        f"as fast as one at the start, {report.cpu_parallelism():.2f}x at the end (2.00: two free "
        f"cores); {time.monotonic() - started:.0f} s in all"
    )


if __name__ == "__main__":
    main()
