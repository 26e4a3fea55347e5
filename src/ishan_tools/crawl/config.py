"""`CrawlConfig`: every setting of a crawl, typed, with its default and its validation."""

from __future__ import annotations

import math
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ishan_tools import __version__
from ishan_tools.crawl.sites import check_crawl_id, crawl_id_for, read_seeds_file, start_urls
from ishan_tools.errors import UsageError

__all__ = ["DEFAULT_USER_AGENT", "CrawlConfig", "option_differences"]

DEFAULT_USER_AGENT = f"ishan-crawl/{__version__} (+https://pypi.org/project/ishan-tools/)"
HTML_TYPES = ("text/html", "application/xhtml+xml")
DEFAULT_OUT_DIR = Path("crawl_out")

# What every worker of a shared crawl must agree on, under the names its options have on the
# command line (`--depth`, `--ignore-robots`, ...), so that a refusal can name the option.
# The rest (out dir, --concurrency, WARC, lease and heartbeat) is each worker's own.
_SHARED = {
    "depth": "max_depth",
    "user_agent": "user_agent",
    "header": "headers",
    "max_time": "max_time",
    "max_pages": "max_pages",
    "max_bytes": "max_bytes",
    "max_page_bytes": "max_page_bytes",
    "per_host_concurrency": "per_host_concurrency",
    "delay": "delay",
    "max_crawl_delay": "max_crawl_delay",
    "include": "include",
    "exclude": "exclude",
    "content_type": "content_types",
    "all_types": "all_types",
    "sitemap": "sitemap",
    "allow_subdomains": "allow_subdomains",
    "timeout": "timeout",
    "retries": "retries",
    "backoff": "backoff",
    "max_retry_after": "max_retry_after",
    "max_redirects": "max_redirects",
    "breaker_threshold": "breaker_threshold",
    "breaker_cooldown": "breaker_cooldown",
    "breaker_slow": "breaker_slow",
    "max_url_length": "max_url_length",
    "max_query_variants": "max_query_variants",
    "sort_query": "sort_query",
}


@dataclass
class CrawlConfig:
    """Settings of one crawl. Defaults follow the original crawler (depth 1) and Scrapy's
    politeness.

    The start URLs are `seed`, `seeds` and the lines of `seeds_file`, each its own site
    (`start_urls`, normalized). `max_depth` -1 means unlimited; `max_pages`, `max_bytes` and
    `max_time` 0 mean no limit. A robots.txt `Crawl-delay` above `delay` raises it, up to
    `max_crawl_delay` seconds (60: a site cannot stall the crawl with `Crawl-delay: 86400`).
    `content_types` is the allow list of media types saved (prefix match, e.g. 'image/');
    `all_types` saves every body. `resume`, `overwrite`, `retry_failed`
    and `refresh` decide what happens to a crawl already in `out_dir`.

    `frontier` (redis://HOST:PORT/DB) shares the crawl `crawl_id` with every process that
    names it; each is a worker `worker_id` (default HOST-PID) that writes to its own out dir
    (default `crawl_out/<worker-id>`). Its URLs are held under leases of `lease` seconds,
    renewed every `heartbeat`; a frontier that stays unreachable for `frontier_timeout`
    seconds ends the worker.
    """

    seed: str = ""
    seeds: list[str] = field(default_factory=list)
    seeds_file: Path | None = None
    out_dir: Path = DEFAULT_OUT_DIR
    max_depth: int = 1
    user_agent: str = DEFAULT_USER_AGENT
    headers: dict[str, str] = field(default_factory=dict)
    max_time: float = 0.0
    max_pages: int = 0
    max_bytes: int = 0
    max_page_bytes: int = 10_000_000
    concurrency: int = 16
    per_host_concurrency: int = 8
    delay: float = 0.0
    max_crawl_delay: float = 60.0
    obey_robots: bool = True
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    content_types: list[str] = field(default_factory=lambda: list(HTML_TYPES))
    all_types: bool = False
    sitemap: bool = False
    allow_subdomains: bool = False
    timeout: float = 30.0
    retries: int = 2
    backoff: float = 0.5
    max_retry_after: float = 60.0
    max_redirects: int = 10
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    breaker_slow: float | None = None  # seconds: slower fetches count as slow calls
    max_url_length: int = 2048
    max_query_variants: int = 100
    sort_query: bool = False
    resume: bool = False
    overwrite: bool = False
    retry_failed: bool = False
    refresh: bool = False
    warc: Path | None = None
    memory_queue: int = 50_000
    frontier: str | None = None
    crawl_id: str | None = None
    worker_id: str | None = None
    lease: float = 30.0
    heartbeat: float = 5.0
    frontier_timeout: float = 60.0
    start_urls: list[str] = field(init=False)
    include_patterns: list[re.Pattern[str]] = field(init=False, repr=False)
    exclude_patterns: list[re.Pattern[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self._check_numbers()
        raw = ([self.seed] if self.seed else []) + list(self.seeds)
        if self.seeds_file is not None:
            raw += read_seeds_file(Path(self.seeds_file))
        self.start_urls = start_urls(raw, sort_query=self.sort_query)
        if self.frontier:
            self._shared_crawl()
        elif not self.start_urls:
            raise UsageError("no start URL: pass one or more URLs, or --seeds FILE")
        if self.resume and self.overwrite:
            raise UsageError("--resume and --overwrite contradict each other: pass one")
        if self.refresh and self.overwrite:
            raise UsageError(
                "--refresh re-checks an existing crawl: it cannot be combined with --overwrite"
            )
        if self.retry_failed and not self.resume:
            self.resume = True
        self.include_patterns = [_compile(p, "--include") for p in self.include]
        self.exclude_patterns = [_compile(p, "--exclude") for p in self.exclude]
        self.content_types = [t.strip().lower() for t in self.content_types if t.strip()]

    def _check_numbers(self) -> None:
        minimums: list[tuple[str, float, float]] = [
            ("--concurrency", self.concurrency, 1),
            ("--per-host-concurrency", self.per_host_concurrency, 1),
            ("--max-page-bytes", self.max_page_bytes, 1),
            ("--max-url-length", self.max_url_length, 1),
            ("--max-query-variants", self.max_query_variants, 1),
            ("--breaker-threshold", self.breaker_threshold, 1),
            ("--memory-queue", self.memory_queue, 1),
            ("--max-time", self.max_time, 0),
            ("--max-pages", self.max_pages, 0),
            ("--max-bytes", self.max_bytes, 0),
            ("--delay", self.delay, 0),
            ("--max-crawl-delay", self.max_crawl_delay, 0),
            ("--retries", self.retries, 0),
            ("--backoff", self.backoff, 0),
            ("--breaker-cooldown", self.breaker_cooldown, 0),
            ("--lease", self.lease, 0.1),
            ("--heartbeat", self.heartbeat, 0.05),
            ("--frontier-timeout", self.frontier_timeout, 0.1),
            ("max_redirects", self.max_redirects, 0),
        ]
        for option, value, minimum in minimums:
            if not math.isfinite(value):
                raise UsageError(f"{option} must be a finite number (got {value})")
            if value < minimum:
                raise UsageError(f"{option} must be at least {minimum} (got {value})")
        if self.max_depth < -1:
            raise UsageError(f"--depth must be -1 (unlimited) or at least 0 (got {self.max_depth})")
        if not math.isfinite(self.timeout) or self.timeout <= 0:
            raise UsageError(f"--timeout must be positive (got {self.timeout})")
        if self.breaker_slow is not None and not 0 < self.breaker_slow < math.inf:
            raise UsageError(f"--breaker-slow must be positive seconds (got {self.breaker_slow})")

    def _shared_crawl(self) -> None:
        assert self.frontier is not None
        if not self.frontier.startswith(("redis://", "rediss://", "unix://")):
            raise UsageError(
                f"--frontier {self.frontier!r} is not a Redis URL: use redis://HOST:PORT/DB"
            )
        for option, wrong in (
            ("--resume", self.resume),
            ("--refresh", self.refresh),
            ("--retry-failed", self.retry_failed),
        ):
            if wrong:
                raise UsageError(
                    f"{option} is for a crawl in one out dir; with --frontier the shared crawl "
                    "goes on by itself: leave it out"
                )
        if not self.start_urls and not self.crawl_id:
            raise UsageError(
                "no start URL: pass URLs or --seeds FILE, or --crawl-id to join a running crawl"
            )
        self.crawl_id = check_crawl_id(self.crawl_id or crawl_id_for(self.start_urls))
        self.worker_id = self.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        check_crawl_id(self.worker_id, "--worker-id")
        if self.out_dir == DEFAULT_OUT_DIR:
            self.out_dir = DEFAULT_OUT_DIR / self.worker_id
        if self.heartbeat >= self.lease:
            raise UsageError(
                f"--heartbeat ({self.heartbeat:g}) must be shorter than --lease ({self.lease:g})"
            )

    def shared_options(self) -> dict[str, Any]:
        """What the workers of a shared crawl must agree on, by option name."""
        options: dict[str, Any] = {name: getattr(self, attr) for name, attr in _SHARED.items()}
        options["ignore_robots"] = not self.obey_robots
        return options

    def allows_type(self, media_type: str) -> bool:
        """True when a body of this media type ('text/html') is to be saved."""
        if self.all_types:
            return True
        return any(media_type.startswith(prefix) for prefix in self.content_types)

    def wants_url(self, url: str) -> bool:
        """The --include/--exclude rules: any include must match, no exclude may."""
        if self.include_patterns and not any(p.search(url) for p in self.include_patterns):
            return False
        return not any(p.search(url) for p in self.exclude_patterns)


def option_differences(stored: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    """Each `shared_options()` entry where `mine` differs from `stored`, as a refusal names it:
    `--delay 0 (here 0.5)`."""
    return [
        f"--{name.replace('_', '-')} {_shown(stored.get(name))} (here {_shown(mine.get(name))})"
        for name in sorted(set(stored) | set(mine))
        if stored.get(name) != mine.get(name)
    ]


def _shown(value: Any) -> str:
    """An option's value as it is given on the command line."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return ",".join(f"{k}: {v}" for k, v in value.items()) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _compile(pattern: str, option: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"{option} {pattern!r} is not a valid regular expression: {exc}") from None
