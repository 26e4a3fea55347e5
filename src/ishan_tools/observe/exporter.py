"""What every Prometheus `/metrics` of the toolkit shares, and the server of `--metrics-port`.

Each run owns its `CollectorRegistry` (no module globals: two crawls in one process never
mix their figures). Counters and histograms move as things happen; live state (in-flight
fetches, queues, partitions) is read at scrape time by a `LiveCollector`. `MetricsServer`
serves a registry from a daemon thread while a command-line run lasts, and `--metrics-linger`
keeps it up after the run so that a short run is still scraped with its final figures.
"""

from __future__ import annotations

import errno
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ishan_tools.errors import UsageError
from ishan_tools.observe.config import MetricsConfig

__all__ = [
    "CONTENT_TYPE",
    "OTHER",
    "LiveCollector",
    "MetricsConfig",
    "MetricsServer",
    "capped",
    "gauge",
    "render",
    "serving",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"
"""The label value that stands for every host (or other key) beyond a label cap."""


def gauge(name: str, doc: str, value: float, **labels: str) -> GaugeMetricFamily:
    """One gauge sample (helper for live collectors)."""
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def capped(values: Mapping[str, float], limit: int) -> list[tuple[str, float]]:
    """The `limit` largest values by key, then one `other` entry summing the rest (if any):
    a label never takes more than `limit + 1` values, however many keys there are."""
    ranked = sorted(values.items(), key=lambda pair: (-pair[1], pair[0]))
    kept = ranked[:limit]
    rest = ranked[limit:]
    if rest:
        kept.append((OTHER, sum(value for _, value in rest)))
    return kept


class LiveCollector(Collector):
    """Families computed at each scrape by `collect` (live state read from the app)."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return list(self._collect())


def render(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(registry)


class MetricsServer:
    """Serves `registry` at http://HOST:PORT/metrics from a daemon thread until `close`."""

    def __init__(self, registry: CollectorRegistry, config: MetricsConfig) -> None:
        self.config = config
        try:
            self._server, self._thread = start_http_server(
                config.port, addr=config.host, registry=registry
            )
        except OSError as exc:
            why = "address in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or exc)
            raise UsageError(
                f"cannot serve metrics on {config.host}:{config.port} ({why}): "
                "pick another --metrics-port or --metrics-host"
            ) from None
        self.port: int = self._server.server_port
        self.url = f"http://{_host_for_url(config.host)}:{self.port}/metrics"

    def close(self, linger_s: float = 0.0, stop: threading.Event | None = None) -> None:
        """Keep serving `linger_s` seconds more (or until `stop` is set), then stop. While
        it lingers, SIGTERM ends it as Ctrl-C does (KeyboardInterrupt), so that what the
        run holds (a temporary directory) is cleaned up."""
        if linger_s > 0:
            in_main = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
            try:
                (stop or threading.Event()).wait(linger_s)
            finally:
                if in_main:
                    signal.signal(signal.SIGTERM, previous)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@contextmanager
def serving(
    registry: CollectorRegistry, config: MetricsConfig | None
) -> Iterator[MetricsServer | None]:
    """Serve `registry` while the block runs (and `config.linger_s` after it, unless the
    block was interrupted); nothing when `config` is None."""
    if config is None:
        yield None
        return
    server = MetricsServer(registry, config)
    linger = 0.0
    try:
        yield server
        linger = config.linger_s
    finally:
        try:
            server.close(linger)
        except KeyboardInterrupt:  # Ctrl-C during the linger: stop serving at once
            server.close()
            raise
