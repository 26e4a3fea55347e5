"""`ishan crawl`: parse options, build a `CrawlConfig`, run the `Crawler`, render events.

Imports only Typer and the standard library at import time; httpx, selectolax and rich load
when the command runs.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(
    name="crawl",
    # A group with one callback and no subcommands: options may follow the URL.
    context_settings={"help_option_names": ["-h", "--help"], "allow_interspersed_args": True},
    subcommand_metavar="",
)


class LogFormat(StrEnum):
    auto = "auto"
    json = "json"
    rich = "rich"


def _headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{value!r} is not 'Name: value'", param_hint="--header")
        headers[name.strip()] = content.strip()
    return headers


Opt = typer.Option


@app.callback(invoke_without_command=True)
def crawl(
    url: Annotated[
        str, typer.Argument(metavar="URL", help="Seed URL, or a bare hostname (https:// is added).")
    ],
    out_dir: Annotated[
        Path, Opt("--out-dir", "-o", envvar="ISHAN_CRAWL_OUT_DIR", help="Where pages go.")
    ] = Path("crawl_out"),
    depth: Annotated[int, Opt("--depth", "-d", help="Link depth from the seed; -1: no limit.")] = 1,
    user_agent: Annotated[
        str | None,
        Opt(
            "--user-agent",
            "-A",
            envvar="ISHAN_CRAWL_USER_AGENT",
            help="User-Agent header (default names ishan-crawl).",
        ),
    ] = None,
    header: Annotated[
        list[str], Opt("--header", "-H", help="Extra header 'Name: value' (repeatable).")
    ] = [],  # noqa: B006
    max_time: Annotated[float, Opt(help="Stop after this many seconds (0: no limit).")] = 0,
    max_pages: Annotated[int, Opt(help="Stop after this many pages (0: no limit).")] = 0,
    max_bytes: Annotated[int, Opt(help="Stop after this many body bytes (0: no limit).")] = 0,
    max_page_bytes: Annotated[int, Opt(help="Skip bodies larger than this.")] = 10_000_000,
    concurrency: Annotated[
        int,
        Opt(
            "--concurrency",
            "-c",
            envvar="ISHAN_CRAWL_CONCURRENCY",
            help="Requests in flight in all.",
        ),
    ] = 16,
    per_host_concurrency: Annotated[
        int, Opt(envvar="ISHAN_CRAWL_PER_HOST_CONCURRENCY", help="Requests in flight per host.")
    ] = 8,
    delay: Annotated[
        float,
        Opt(
            envvar="ISHAN_CRAWL_DELAY",
            help="Seconds between requests to one host (raised to robots.txt Crawl-delay).",
        ),
    ] = 0.0,
    ignore_robots: Annotated[bool, Opt("--ignore-robots", help="Do not obey robots.txt.")] = False,
    include: Annotated[list[str], Opt(help="Only URLs matching this regex (repeatable).")] = [],  # noqa: B006
    exclude: Annotated[list[str], Opt(help="Skip URLs matching this regex (repeatable).")] = [],  # noqa: B006
    content_type: Annotated[
        list[str], Opt(help="Media types to save (repeatable, prefix match; default HTML).")
    ] = [],  # noqa: B006
    all_types: Annotated[
        bool, Opt("--all-types", help="Save every body, with its extension.")
    ] = False,
    sitemap: Annotated[
        bool, Opt("--sitemap", help="Also seed from the site's sitemap.xml.")
    ] = False,
    allow_subdomains: Annotated[
        bool, Opt("--allow-subdomains", help="Follow links to subdomains of the seed host.")
    ] = False,
    timeout: Annotated[
        float, Opt(envvar="ISHAN_CRAWL_TIMEOUT", help="Seconds per request.")
    ] = 30.0,
    retries: Annotated[
        int, Opt(help="Retries after timeouts, connection errors, 429 and 5xx.")
    ] = 2,
    backoff: Annotated[
        float, Opt(help="First retry wait in seconds; doubles each retry (Retry-After wins).")
    ] = 0.5,
    breaker_threshold: Annotated[
        int, Opt(help="Server failures in a row that pause a host (circuit breaker).")
    ] = 5,
    breaker_cooldown: Annotated[
        float, Opt(help="Seconds a paused host waits before one trial request.")
    ] = 30.0,
    max_url_length: Annotated[int, Opt(help="Skip longer URLs (trap guard).")] = 2048,
    max_query_variants: Annotated[
        int, Opt(help="URLs per path differing only in query (trap guard).")
    ] = 100,
    memory_queue: Annotated[
        int, Opt(help="Queued URLs kept in memory; the rest wait on disk.")
    ] = 50_000,
    sort_query: Annotated[
        bool, Opt("--sort-query", help="Sort query parameters when normalizing URLs.")
    ] = False,
    resume: Annotated[bool, Opt("--resume", help="Continue the crawl in --out-dir.")] = False,
    retry_failed: Annotated[
        bool, Opt("--retry-failed", help="With --resume, fetch the failed URLs again.")
    ] = False,
    refresh: Annotated[
        bool, Opt("--refresh", help="Re-crawl with conditional requests (ETag, If-Modified-Since).")
    ] = False,
    overwrite: Annotated[
        bool, Opt("--overwrite", help="Replace the crawl already in --out-dir.")
    ] = False,
    warc: Annotated[Path | None, Opt(help="Also write a WARC file (e.g. out.warc.gz).")] = None,
    log_format: Annotated[
        LogFormat,
        Opt(
            envvar="ISHAN_CRAWL_LOG_FORMAT",
            help="json: JSON lines on stdout; rich: progress display; auto: rich on a terminal.",
        ),
    ] = LogFormat.auto,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="Print only errors and the summary.")] = False,
) -> None:
    """Crawl URL breadth-first on its own host; save each page as OUT_DIR/<hash>.html.

    Exit status: 0 when the crawl ran (failed pages are counted in the summary).

    1 when the seed cannot be fetched, 2 on bad usage, 130 on Ctrl-C (then --resume).
    """
    import asyncio

    from ishan_tools.crawl.config import DEFAULT_USER_AGENT, HTML_TYPES, CrawlConfig
    from ishan_tools.crawl.engine import Crawler
    from ishan_tools.crawl.render import close_sink, open_sink

    config = CrawlConfig(
        seed=url,
        out_dir=out_dir,
        max_depth=depth,
        user_agent=user_agent or DEFAULT_USER_AGENT,
        headers=_headers(header),
        max_time=max_time,
        max_pages=max_pages,
        max_bytes=max_bytes,
        max_page_bytes=max_page_bytes,
        concurrency=concurrency,
        per_host_concurrency=per_host_concurrency,
        delay=delay,
        obey_robots=not ignore_robots,
        include=include,
        exclude=exclude,
        content_types=content_type or list(HTML_TYPES),
        all_types=all_types,
        sitemap=sitemap,
        allow_subdomains=allow_subdomains,
        timeout=timeout,
        retries=retries,
        memory_queue=memory_queue,
        backoff=backoff,
        breaker_threshold=breaker_threshold,
        breaker_cooldown=breaker_cooldown,
        max_url_length=max_url_length,
        max_query_variants=max_query_variants,
        sort_query=sort_query,
        resume=resume,
        retry_failed=retry_failed,
        refresh=refresh,
        overwrite=overwrite,
        warc=warc,
    )
    crawler = Crawler(config)
    sink = open_sink(log_format.value, quiet=quiet, stats=crawler.stats, stop=crawler.stop)
    crawler.sink = sink
    try:
        asyncio.run(crawler.run())
    finally:
        close_sink(sink)
