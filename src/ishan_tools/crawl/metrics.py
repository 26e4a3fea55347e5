"""Prometheus metrics of one crawl process (`ishan crawl --metrics-port`): `ishan_crawl_*`.

Three sources, each read once:
- the crawl's running statistics (`CrawlStats`, what the summary reports): pages, bytes,
  retries, errors by kind and skipped URLs by reason, exported as counters at scrape time;
- the event stream (`observe` is a sink): responses by status class, robots.txt denials, the
  fetch latency and saved page size histograms;
- live state read at scrape time: fetches in flight, leases held, and per host its queue and
  breaker state.

Host labels are capped: the `host_labels` hosts with the longest queues get their own series
(hosts whose breaker is not closed come first for the breaker gauge) and every other host
is summed into `host="other"`, so a crawl of 100,000 hosts exports at most `host_labels + 1`
series per family.

A shared crawl: each worker serves what it did, plus the crawl-wide totals (URLs queued,
leased, done, failed and skipped in Redis, live workers: a few reads per scrape) labelled
`crawl`, the same on every worker: take `max`, never `sum`. The per-host queues and breakers
of a shared crawl live in Redis; reading them costs a read per host, so one place serves them:
`ishan crawl status --serve-metrics PORT` (`status_registry`), with the totals too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ishan_tools.crawl.events import Event
from ishan_tools.errors import IshanError
from ishan_tools.observe.config import MetricsConfig
from ishan_tools.observe.exporter import LiveCollector, capped, gauge, serving

if TYPE_CHECKING:
    from ishan_tools.crawl.engine import Crawler

__all__ = [
    "HOST_LABELS",
    "CrawlMetrics",
    "serve_status",
    "status_registry",
    "watched",
]

HOST_LABELS = 20
"""Hosts that get their own label value; the rest are summed under host="other"."""
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = tuple(float(2**power) for power in range(8, 25, 2))  # 256 B .. 16 MiB
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
FRONTIER_STATES = ("queued", "leased", "done", "failed", "skipped")


class CrawlMetrics:
    """The registry of one `Crawler`; feed `observe` the crawl's events."""

    def __init__(self, crawler: Crawler, *, host_labels: int = HOST_LABELS) -> None:
        self.crawler = crawler
        self.host_labels = host_labels
        self.url = ""
        """Where `watched` serves them (http://HOST:PORT/metrics)."""
        self.registry = CollectorRegistry()
        self.responses = Counter(
            "ishan_crawl_responses",
            "HTTP responses by status class (2xx, 3xx, 4xx, 5xx).",
            ["status_class"],
            registry=self.registry,
        )
        self.robots_denied = Counter(
            "ishan_crawl_robots_denied",
            "URLs not fetched because robots.txt disallows them.",
            registry=self.registry,
        )
        self.fetch_seconds = Histogram(
            "ishan_crawl_fetch_duration_seconds",
            "Time to fetch one URL (its redirects and retries included).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.page_bytes = Histogram(
            "ishan_crawl_page_size_bytes",
            "Size of each saved page body.",
            buckets=SIZE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(LiveCollector(self._live))

    # -- events -----------------------------------------------------------------------------

    def observe(self, event: Event) -> None:
        """A sink: count what the event says."""
        fields = event.fields
        if event.name == "response":
            status = int(fields.get("status") or 0)
            self.responses.labels(f"{status // 100}xx").inc()
            elapsed = fields.get("elapsed_ms")
            if isinstance(elapsed, int | float):
                self.fetch_seconds.observe(elapsed / 1000)
        elif event.name == "save":
            self.page_bytes.observe(float(fields.get("bytes") or 0))
        elif event.name == "robots_skip":
            self.robots_denied.inc()

    # -- scrape time ------------------------------------------------------------------------

    def _live(self) -> Iterator[Metric]:
        yield from self._totals()
        crawler = self.crawler
        yield gauge(
            "ishan_crawl_fetches_in_flight",
            "Fetches this process has in flight.",
            crawler.stats.in_flight,
        )
        frontier = getattr(crawler, "frontier", None)
        held = getattr(frontier, "leases_held", None)
        yield gauge(
            "ishan_crawl_leases_held",
            "URLs this process holds a lease on (a shared crawl; else its fetches in flight).",
            held if isinstance(held, int) else crawler.stats.in_flight,
        )
        if crawler.config.frontier:
            yield from self._shared()
        else:
            queues = getattr(frontier, "queues", {})
            queued = {host: float(len(urls)) for host, urls in list(queues.items())}
            breakers = {key: host.breaker.state.value for key, host in list(crawler.hosts.items())}
            yield from host_families(queued, breakers, {}, self.host_labels)

    def _totals(self) -> Iterator[Metric]:
        stats = self.crawler.stats
        yield _counter("ishan_crawl_pages", "Pages fetched (responses, any status).", stats.fetched)
        yield _counter("ishan_crawl_bytes", "Body bytes received for pages.", stats.bytes)
        yield _counter("ishan_crawl_retries", "Fetch attempts retried.", stats.retries)
        errors = CounterMetricFamily(
            "ishan_crawl_errors", "Pages that failed, by kind.", labels=["kind"]
        )
        for kind, count in sorted(stats.errors.items()):
            errors.add_metric([kind], count)
        yield errors
        skipped = CounterMetricFamily(
            "ishan_crawl_skipped_urls", "URLs not fetched or saved, by reason.", labels=["reason"]
        )
        for reason, count in sorted(stats.skipped.items()):
            skipped.add_metric([reason], count)
        yield skipped

    def _shared(self) -> Iterator[Metric]:
        """The crawl-wide totals from Redis (labelled `crawl`: take max across workers)."""
        from ishan_tools.crawl.shared.admin import crawl_totals

        config = self.crawler.config
        assert config.frontier is not None and config.crawl_id is not None
        try:
            totals = crawl_totals(config.frontier, config.crawl_id)
        except IshanError:
            return  # Redis unreachable: the worker's own figures are still served
        yield from crawl_wide(config.crawl_id, totals)


def crawl_wide(crawl: str, figures: Mapping[str, Any]) -> Iterator[Metric]:
    """A shared crawl's URLs by state and its workers alive, labelled `crawl`."""
    urls = GaugeMetricFamily(
        "ishan_crawl_frontier_urls",
        "URLs of the shared crawl by state, in Redis (crawl-wide: max across workers).",
        labels=["crawl", "state"],
    )
    for state in FRONTIER_STATES:
        urls.add_metric([crawl, state], float(figures[state]))
    yield urls
    yield gauge(
        "ishan_crawl_workers_alive",
        "Workers of the shared crawl alive (crawl-wide: max across workers).",
        float(figures["workers_alive"]),
        crawl=crawl,
    )


def host_families(
    queued: Mapping[str, float],
    breakers: Mapping[str, str],
    extra: Mapping[str, str],
    host_labels: int = HOST_LABELS,
) -> Iterator[Metric]:
    """Per host queue and breaker state, at most `host_labels` hosts plus "other", and the
    hosts by breaker state; `extra`: labels every series carries (a shared crawl's `crawl`)."""
    names = [*extra, "host"]
    kept = capped(queued, host_labels)
    queue = GaugeMetricFamily(
        "ishan_crawl_host_queued_urls",
        f"URLs queued per host (the {host_labels} longest queues; the rest in 'other').",
        labels=names,
    )
    for host, count in kept:
        queue.add_metric([*extra.values(), host], count)
    yield queue
    not_closed = {h: queued.get(h, 0.0) for h, s in breakers.items() if s != "closed"}
    shown = [host for host, _ in capped(not_closed, host_labels) if host in breakers]
    for host, _ in kept:
        if len(shown) >= host_labels:
            break
        if host in breakers and host not in shown:
            shown.append(host)
    state = GaugeMetricFamily(
        "ishan_crawl_host_breaker_state",
        "Circuit breaker per host: 0 closed, 1 half-open, 2 open (hosts not closed first).",
        labels=names,
    )
    for host in shown:
        state.add_metric([*extra.values(), host], BREAKER_VALUES.get(breakers[host], 0))
    yield state
    by_state = GaugeMetricFamily(
        "ishan_crawl_hosts", "Hosts by breaker state (every host).", labels=[*extra, "breaker"]
    )
    for name in BREAKER_VALUES:
        count = sum(1 for s in breakers.values() if s == name)
        by_state.add_metric([*extra.values(), name], float(count))
    yield by_state


def status_registry(frontier: str, crawl_id: str) -> CollectorRegistry:
    """`ishan crawl status --serve-metrics`: a shared crawl's figures from one place, read
    from Redis at each scrape: the totals and, capped, every host's queue and breaker."""
    from ishan_tools.crawl.shared.admin import crawl_status

    def collect() -> Iterator[Metric]:
        try:
            status = crawl_status(frontier, crawl_id)
        except IshanError:
            return  # Redis unreachable: nothing to serve until it is back
        yield from crawl_wide(crawl_id, status)
        rows: list[dict[str, Any]] = status["hosts"]
        queued = {row["host"]: float(row["queued"]) for row in rows}
        breakers = {row["host"]: str(row["breaker"]).replace("-", "_") for row in rows}
        yield from host_families(queued, breakers, {"crawl": crawl_id})

    registry = CollectorRegistry()
    registry.register(LiveCollector(collect))
    return registry


@contextmanager
def watched(crawler: Crawler, config: MetricsConfig) -> Iterator[CrawlMetrics]:
    """Serve `crawler`'s metrics while the block runs, and `config.linger_s` after it; the
    block feeds `observe` the crawl's events."""
    metrics = CrawlMetrics(crawler)
    with serving(metrics.registry, config) as server:
        assert server is not None
        metrics.url = server.url
        yield metrics


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def serve_status(
    frontier: str,
    crawl_id: str,
    config: MetricsConfig,
    announce: Callable[[str], None],
    stop: threading.Event | None = None,
) -> None:
    """Serve `status_registry` until `stop` is set (or Ctrl-C); `announce` gets the URL."""
    registry = status_registry(frontier, crawl_id)
    with serving(registry, MetricsConfig(config.port, config.host)) as server:
        assert server is not None
        announce(server.url)
        (stop or threading.Event()).wait()
