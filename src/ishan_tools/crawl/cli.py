"""`ishan crawl`: parse options, build a `CrawlConfig`, run the `Crawler`, render events.

`ishan crawl URL` is short for `ishan crawl run URL`. Imports only Typer and the standard
library at import time; httpx, selectolax and rich load when the command runs.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ishan_tools._cli.extras import require_extra
from ishan_tools._cli.group import default_group
from ishan_tools._cli.options import (
    json_option,
    metrics_host_option,
    metrics_linger_option,
    metrics_port_option,
    quiet_option,
)
from ishan_tools._cli.output import console, print_json
from ishan_tools.crawl.config import DEFAULT_USER_AGENT, HTML_TYPES, CrawlConfig
from ishan_tools.observe.config import MetricsConfig

if TYPE_CHECKING:
    from ishan_tools.crawl.engine import Crawler
    from ishan_tools.crawl.events import EventSink

__all__ = ["app"]

app = typer.Typer(
    name="crawl",
    cls=default_group("run"),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Crawl sites politely, each breadth-first on its own host; save each page under its "
    "hash. With --frontier, any number of workers share one crawl through Redis."
    "\n\n`ishan crawl URL` is short for `ishan crawl run URL`: `ishan crawl run --help` lists "
    "the options.",
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
D = CrawlConfig  # the defaults below are its fields' defaults
# how to show or watch the crawl, not what to crawl
_DISPLAY_OPTIONS = ("log_format", "quiet", "metrics_port", "metrics_host", "metrics_linger")
_SHARED = "Shared crawl (Redis)"


@app.command("run")
def run(
    ctx: typer.Context,
    seeds: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[URL]...",
            help="Start URLs, or bare hostnames (https:// is added); each is its own site.",
            show_default=False,
        ),
    ] = None,
    seeds_file: Annotated[
        Path | None,
        Opt("--seeds", help="File of start URLs: one URL or host a line, # comments."),
    ] = D.seeds_file,
    out_dir: Annotated[
        Path,
        Opt(
            "--out-dir",
            "-o",
            envvar="ISHAN_CRAWL_OUT_DIR",
            help="Where pages go (with --frontier: crawl_out/<worker-id>).",
        ),
    ] = D.out_dir,
    max_depth: Annotated[
        int, Opt("--depth", "-d", help="Link depth from the seed; -1: no limit.")
    ] = D.max_depth,
    user_agent: Annotated[
        str | None,
        Opt(
            "--user-agent",
            "-A",
            envvar="ISHAN_CRAWL_USER_AGENT",
            help="User-Agent header (default names ishan-crawl).",
        ),
    ] = None,
    headers: Annotated[
        list[str], Opt("--header", "-H", help="Extra header 'Name: value' (repeatable).")
    ] = [],  # noqa: B006
    max_time: Annotated[
        float, Opt(help="Stop after this many seconds (0: no limit).")
    ] = D.max_time,
    max_pages: Annotated[int, Opt(help="Stop after this many pages (0: no limit).")] = D.max_pages,
    max_bytes: Annotated[
        int, Opt(help="Stop after this many body bytes (0: no limit).")
    ] = D.max_bytes,
    max_page_bytes: Annotated[int, Opt(help="Skip bodies larger than this.")] = D.max_page_bytes,
    concurrency: Annotated[
        int,
        Opt(
            "--concurrency",
            "-c",
            envvar="ISHAN_CRAWL_CONCURRENCY",
            help="Requests in flight in all.",
        ),
    ] = D.concurrency,
    per_host_concurrency: Annotated[
        int, Opt(envvar="ISHAN_CRAWL_PER_HOST_CONCURRENCY", help="Requests in flight per host.")
    ] = D.per_host_concurrency,
    delay: Annotated[
        float,
        Opt(
            envvar="ISHAN_CRAWL_DELAY",
            help="Seconds between requests to one host (raised to robots.txt Crawl-delay).",
        ),
    ] = D.delay,
    max_crawl_delay: Annotated[
        float,
        Opt(
            envvar="ISHAN_CRAWL_MAX_CRAWL_DELAY",
            help="Cap on a robots.txt Crawl-delay, in seconds (a larger one is cut to this).",
        ),
    ] = D.max_crawl_delay,
    ignore_robots: Annotated[bool, Opt("--ignore-robots", help="Do not obey robots.txt.")] = False,
    include: Annotated[list[str], Opt(help="Only URLs matching this regex (repeatable).")] = [],  # noqa: B006
    exclude: Annotated[list[str], Opt(help="Skip URLs matching this regex (repeatable).")] = [],  # noqa: B006
    content_types: Annotated[
        list[str],
        Opt("--content-type", help="Media types to save (repeatable, prefix match; default HTML)."),
    ] = [],  # noqa: B006
    all_types: Annotated[
        bool, Opt("--all-types", help="Save every body, with its extension.")
    ] = D.all_types,
    sitemap: Annotated[
        bool, Opt("--sitemap", help="Also seed from the site's sitemap.xml.")
    ] = D.sitemap,
    allow_subdomains: Annotated[
        bool, Opt("--allow-subdomains", help="Follow links to subdomains of the seed host.")
    ] = D.allow_subdomains,
    timeout: Annotated[
        float, Opt(envvar="ISHAN_CRAWL_TIMEOUT", help="Seconds per request.")
    ] = D.timeout,
    retries: Annotated[
        int, Opt(help="Retries after timeouts, connection errors, 429 and 5xx.")
    ] = D.retries,
    backoff: Annotated[
        float, Opt(help="First retry wait in seconds; doubles each retry (Retry-After wins).")
    ] = D.backoff,
    breaker_threshold: Annotated[
        int, Opt(help="Server failures in a row that pause a host (circuit breaker).")
    ] = D.breaker_threshold,
    breaker_cooldown: Annotated[
        float, Opt(help="Seconds a paused host waits before one trial request.")
    ] = D.breaker_cooldown,
    breaker_slow: Annotated[
        float | None,
        Opt(
            envvar="ISHAN_CRAWL_BREAKER_SLOW",
            help="Seconds after which a fetch counts as slow; --breaker-threshold slow fetches "
            "in a row pause a host too (off by default).",
            show_default=False,
        ),
    ] = D.breaker_slow,
    max_url_length: Annotated[int, Opt(help="Skip longer URLs (trap guard).")] = D.max_url_length,
    max_query_variants: Annotated[
        int, Opt(help="URLs per path differing only in query (trap guard).")
    ] = D.max_query_variants,
    memory_queue: Annotated[
        int, Opt(help="Queued URLs kept in memory; the rest wait on disk.")
    ] = D.memory_queue,
    sort_query: Annotated[
        bool, Opt("--sort-query", help="Sort query parameters when normalizing URLs.")
    ] = D.sort_query,
    resume: Annotated[bool, Opt("--resume", help="Continue the crawl in --out-dir.")] = D.resume,
    retry_failed: Annotated[
        bool, Opt("--retry-failed", help="With --resume, fetch the failed URLs again.")
    ] = D.retry_failed,
    refresh: Annotated[
        bool, Opt("--refresh", help="Re-crawl with conditional requests (ETag, If-Modified-Since).")
    ] = D.refresh,
    overwrite: Annotated[
        bool, Opt("--overwrite", help="Replace the crawl already in --out-dir.")
    ] = D.overwrite,
    warc: Annotated[Path | None, Opt(help="Also write a WARC file (e.g. out.warc.gz).")] = D.warc,
    log_format: Annotated[
        LogFormat,
        Opt(
            envvar="ISHAN_CRAWL_LOG_FORMAT",
            help="json: JSON lines on stdout; rich: progress display; auto: rich on a terminal.",
        ),
    ] = LogFormat.auto,
    quiet: Annotated[bool, quiet_option("Print only errors and the summary.")] = False,
    frontier: Annotated[
        str | None,
        Opt(
            envvar="ISHAN_CRAWL_FRONTIER",
            help="Share the crawl through Redis (redis://HOST:PORT/DB) with other workers.",
            rich_help_panel=_SHARED,
        ),
    ] = D.frontier,
    crawl_id: Annotated[
        str | None,
        Opt(
            help="Name of the shared crawl (default: from the start URLs).",
            rich_help_panel=_SHARED,
        ),
    ] = D.crawl_id,
    worker_id: Annotated[
        str | None,
        Opt(help="This worker's name (default: HOST-PID).", rich_help_panel=_SHARED),
    ] = D.worker_id,
    lease: Annotated[
        float,
        Opt(
            help="Seconds a fetched URL stays leased without renewal (then it is requeued).",
            rich_help_panel=_SHARED,
        ),
    ] = D.lease,
    heartbeat: Annotated[
        float,
        Opt(help="Seconds between lease renewals and liveness beats.", rich_help_panel=_SHARED),
    ] = D.heartbeat,
    frontier_timeout: Annotated[
        float,
        Opt(
            help="Seconds without Redis before the worker gives up (exit 1).",
            rich_help_panel=_SHARED,
        ),
    ] = D.frontier_timeout,
    metrics_port: Annotated[int | None, metrics_port_option("ISHAN_CRAWL_METRICS_PORT")] = None,
    metrics_host: Annotated[
        str, metrics_host_option("ISHAN_CRAWL_METRICS_HOST")
    ] = MetricsConfig.host,
    metrics_linger: Annotated[float, metrics_linger_option()] = MetricsConfig.linger_s,
) -> None:
    """Crawl each URL breadth-first on its own host; save each page as OUT_DIR/<hash>.html.

    With --frontier, any number of processes on any machines share one crawl: the first
    seeds it, the others join, and each ends by itself when nothing is left.

    Exit status: 0 when the crawl ran (failed pages are counted in the summary).

    1 when no start URL can be fetched or the frontier stays unreachable, 2 on bad usage,
    130 on Ctrl-C (then --resume).
    """
    require_extra("ishan crawl", "crawl")
    from ishan_tools.crawl.engine import Crawler

    crawler = Crawler(_config(ctx.params))
    if metrics_port is None:  # prometheus_client is loaded only for --metrics-port
        _crawl(crawler, log_format, quiet)
        return
    from ishan_tools.crawl.metrics import watched

    with watched(crawler, MetricsConfig(metrics_port, metrics_host, metrics_linger)) as metrics:
        console(stderr=True).print(f"metrics at {metrics.url}", soft_wrap=True)
        _crawl(crawler, log_format, quiet, metrics.observe)


def _crawl(
    crawler: Crawler, log_format: LogFormat, quiet: bool, observe: EventSink | None = None
) -> None:
    """Run the crawl with its output sink (and `observe`, the metrics, fed the same events)."""
    import asyncio

    from ishan_tools.crawl.events import fan_out
    from ishan_tools.crawl.render import close_sink, open_sink

    sink = open_sink(log_format.value, quiet=quiet, stats=crawler.stats, stop=crawler.stop)
    crawler.sink = sink if observe is None else fan_out(sink, observe)
    try:
        asyncio.run(crawler.run())
    finally:
        close_sink(sink)


Frontier = Annotated[
    str,
    Opt(
        envvar="ISHAN_CRAWL_FRONTIER",
        help="Redis URL of the shared crawl (redis://HOST:PORT/DB).",
        show_default=False,
    ),
]
CrawlId = Annotated[
    str | None, Opt(help="The crawl (default: the only one stored there).", show_default=False)
]


@app.command("status")
def status(
    frontier: Frontier,
    crawl_id: CrawlId = None,
    as_json: Annotated[bool, json_option()] = False,
    serve_metrics: Annotated[
        int | None,
        Opt(
            "--serve-metrics",
            metavar="PORT",
            min=0,
            max=65535,
            show_default=False,
            help="Serve the crawl's figures (totals, per host queues and breakers) at "
            "http://HOST:PORT/metrics until Ctrl-C, from this one place (0: any free port).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, metrics_host_option("ISHAN_CRAWL_METRICS_HOST")
    ] = MetricsConfig.host,
) -> None:
    """Show a shared crawl: queued, leased, done and failed URLs per host, live workers, pages/s.

    With --serve-metrics, serve them to Prometheus instead, until Ctrl-C.
    """
    require_extra("ishan crawl status", "crawl", ("redis", "prometheus_client"))
    from ishan_tools.crawl.shared.admin import crawl_status

    snapshot = crawl_status(frontier, crawl_id)
    if serve_metrics is not None:
        from ishan_tools.crawl.metrics import serve_status

        def announce(url: str) -> None:
            console(stderr=True).print(f"metrics at {url} (Ctrl-C stops)", soft_wrap=True)

        config = MetricsConfig(serve_metrics, metrics_host)
        serve_status(frontier, snapshot["crawl_id"], config, announce)
        return
    if as_json:
        print_json(snapshot)
        return
    from ishan_tools.crawl.render import render_status

    render_status(console(), snapshot)


@app.command("forget")
def forget(
    frontier: Frontier,
    crawl_id: CrawlId = None,
    force: Annotated[bool, Opt("--force", help="Delete it even while workers are alive.")] = False,
) -> None:
    """Delete a finished (or abandoned) shared crawl's keys from Redis."""
    require_extra("ishan crawl forget", "crawl", ("redis",))
    from ishan_tools.crawl.shared.admin import forget_crawl

    deleted = forget_crawl(frontier, crawl_id, force=force)
    console().print(f"forgot the crawl: {deleted} keys deleted from {frontier}", soft_wrap=True)


@app.command("merge")
def merge(
    dirs: Annotated[
        list[Path], typer.Argument(metavar="DIR...", help="Workers' out dirs.", show_default=False)
    ],
    out: Annotated[
        Path, Opt("--out", "-o", help="The merged crawl dir (new).", show_default=False)
    ],
) -> None:
    """Join workers' out dirs into one crawl dir: last line per URL wins, files copied once."""
    from ishan_tools.crawl.merge import merge_crawls

    result = merge_crawls(dirs, out)
    console().print(
        f"merged {result.dirs} dirs into {out}: {result.urls} URLs ({result.repeats} repeated "
        f"lines dropped), {result.files} files",
        soft_wrap=True,
    )


def _config(params: dict[str, Any]) -> CrawlConfig:
    """The command's options as a `CrawlConfig`: every parameter not about display is a
    field of the same name, but for the four whose command-line form differs."""
    fields = {name: value for name, value in params.items() if name not in _DISPLAY_OPTIONS}
    fields["seeds"] = fields["seeds"] or []
    fields["headers"] = _headers(fields["headers"])
    fields["obey_robots"] = not fields.pop("ignore_robots")
    fields["content_types"] = fields["content_types"] or list(HTML_TYPES)
    fields["user_agent"] = fields["user_agent"] or DEFAULT_USER_AGENT
    return CrawlConfig(**fields)
