"""`CrawlConfig`: every setting of a crawl, typed, with its default and its validation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ishan_tools import __version__
from ishan_tools.errors import UsageError

__all__ = ["DEFAULT_USER_AGENT", "CrawlConfig"]

DEFAULT_USER_AGENT = f"ishan-crawl/{__version__} (+https://pypi.org/project/ishan-tools/)"
HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class CrawlConfig:
    """Settings of one crawl. Defaults follow the original crawler (depth 1) and Scrapy's
    politeness.

    `max_depth` -1 means unlimited; `max_pages`, `max_bytes` and `max_time` 0 mean no limit.
    `content_types` is the allow list of media types saved (prefix match, e.g. 'image/');
    `all_types` saves every body. `resume`, `overwrite`, `retry_failed` and `refresh` decide
    what happens to a crawl already in `out_dir`.
    """

    seed: str
    out_dir: Path = Path("crawl_out")
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
    max_url_length: int = 2048
    max_query_variants: int = 100
    sort_query: bool = False
    resume: bool = False
    overwrite: bool = False
    retry_failed: bool = False
    refresh: bool = False
    warc: Path | None = None
    memory_queue: int = 50_000
    include_patterns: list[re.Pattern[str]] = field(init=False, repr=False)
    exclude_patterns: list[re.Pattern[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self._check_numbers()
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
        minimums: list[tuple[str, float, int]] = [
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
            ("--retries", self.retries, 0),
            ("--backoff", self.backoff, 0),
            ("--breaker-cooldown", self.breaker_cooldown, 0),
            ("max_redirects", self.max_redirects, 0),
        ]
        for option, value, minimum in minimums:
            if value < minimum:
                raise UsageError(f"{option} must be at least {minimum} (got {value})")
        if self.max_depth < -1:
            raise UsageError(f"--depth must be -1 (unlimited) or at least 0 (got {self.max_depth})")
        if self.timeout <= 0:
            raise UsageError(f"--timeout must be positive (got {self.timeout})")

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


def _compile(pattern: str, option: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"{option} {pattern!r} is not a valid regular expression: {exc}") from None
