"""Prometheus metrics of a migration run (`ishan migrate run --metrics-port`): `ishan_migrate_*`.

`RunMetrics` is what a participant that works on partitions updates: documents processed,
failed, skipped and written, partition takeovers, the batch and callback durations, the
leases it holds, and the rate limit (`rate_limit`: a gauge the rate limiter sets, 0 when the
run has none). `Exporter` is what the command serves on its one port:
- with one worker, the `RunMetrics` of this process;
- with `--workers N`, the sum of the N worker processes' `RunMetrics`: each worker writes its
  figures into files under a temporary directory (prometheus_client's multiprocess mode,
  `ishan_tools.observe.multiprocess`) and this process adds them up at each scrape.
Both add the run-wide figures read from the database at scrape time (partitions done and in
total, documents passed and planned), labelled `migration`: every participant that serves
them reports the same run, so take `max by (migration)` across machines, never `sum`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from ishan_tools.migrate.report import RunSummary
from ishan_tools.migrate.script import MigrationScript
from ishan_tools.observe import multiprocess
from ishan_tools.observe.config import MetricsConfig
from ishan_tools.observe.exporter import LiveCollector, serving

__all__ = ["Exporter", "RunMetrics", "exporting", "worker_metrics"]

BATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CALLBACK_BUCKETS = (1e-5, 5e-5, 1e-4, 5e-4, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
_WRITTEN = ("inserted", "modified", "deleted", "upserted")
_RUN_FIGURES = (  # run-wide, the same for every participant: take max across machines
    ("partitions", "ishan_migrate_partitions", "Partitions of the run (run-wide)."),
    ("partitions_done", "ishan_migrate_partitions_done", "Partitions done (run-wide)."),
    ("leased", "ishan_migrate_partitions_leased", "Partitions leased now (run-wide)."),
    ("planned", "ishan_migrate_run_documents_planned", "Documents the run plans (run-wide)."),
    ("passed", "ishan_migrate_run_documents_passed", "Documents the run passed (run-wide)."),
)


class RunMetrics:
    """The figures one participant (a process working on partitions) updates."""

    def __init__(self, migration: str, registry: CollectorRegistry | None = None) -> None:
        self.migration = migration
        registry = registry or CollectorRegistry()
        labels = ["migration"]
        documents = {
            outcome: Counter(
                f"ishan_migrate_documents_{outcome}",
                doc,
                labels,
                registry=registry,
            ).labels(migration)
            for outcome, doc in (
                ("processed", "Documents whose migrate() callback succeeded."),
                ("failed", "Documents whose callback or write failed."),
                ("skipped", "Documents passed over (ones this migration inserted itself)."),
            )
        }
        self.processed, self.failed, self.skipped = documents.values()
        self.written = Counter(
            "ishan_migrate_documents_written",
            "Documents the bulk writes inserted, modified, deleted or upserted, by collection.",
            ["migration", "collection"],
            registry=registry,
        )
        self.takeovers = Counter(
            "ishan_migrate_partition_takeovers",
            "Partitions taken over from a worker whose lease ran out.",
            labels,
            registry=registry,
        ).labels(migration)
        self.batch_seconds = Histogram(
            "ishan_migrate_batch_duration_seconds",
            "Time for one batch: reading it, its callbacks, its writes and its checkpoint.",
            labels,
            buckets=BATCH_BUCKETS,
            registry=registry,
        ).labels(migration)
        self.callback_seconds = Histogram(
            "ishan_migrate_callback_duration_seconds",
            "Time in one migrate() callback.",
            labels,
            buckets=CALLBACK_BUCKETS,
            registry=registry,
        ).labels(migration)
        self.leases_held = Gauge(
            "ishan_migrate_leases_held",
            "Partitions leased by the workers serving these figures.",
            labels,
            registry=registry,
            multiprocess_mode="livesum",
        ).labels(migration)
        self.rate_limit = Gauge(
            "ishan_migrate_rate_limit_documents_per_second",
            "The run's rate limit in documents per second (0: none).",
            labels,
            registry=registry,
            multiprocess_mode="max",
        ).labels(migration)
        self.rate_limit.set(0)
        self.leases_held.set(0)
        self._batch_started = time.perf_counter()
        self._seen = {"processed": 0, "failed": 0}
        self._written: dict[str, int] = {}

    def timed(self, script: MigrationScript) -> MigrationScript:
        """`script` with its callback timed into the callback histogram."""
        callback, observe = script.migrate, self.callback_seconds.observe

        def migrate(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return callback(*args)
            finally:
                observe(time.perf_counter() - started)

        return dataclasses.replace(script, migrate=migrate)

    def partition_started(self, taken_over: bool) -> None:
        self.leases_held.set(1)
        if taken_over:
            self.takeovers.inc()
        self._batch_started = time.perf_counter()

    def partition_ended(self) -> None:
        self.leases_held.set(0)

    def batch_done(self, summary: RunSummary, passed: int) -> None:
        """After each batch: count what the participant's summary gained since the last."""
        now = time.perf_counter()
        self.batch_seconds.observe(now - self._batch_started)
        self._batch_started = now
        processed = summary.processed - self._seen["processed"]
        failed = summary.error_count - self._seen["failed"]
        self._seen = {"processed": summary.processed, "failed": summary.error_count}
        self.processed.inc(processed)
        self.failed.inc(failed)
        self.skipped.inc(max(passed - processed - failed, 0))
        for collection, per in summary.results.counts.items():
            total = sum(per.get(field, 0) for field in _WRITTEN)
            gained = total - self._written.get(collection, 0)
            if gained > 0:
                self.written.labels(self.migration, collection).inc(gained)
            self._written[collection] = total


class Exporter:
    """What `ishan migrate run --metrics-port` serves; see the module docstring."""

    def __init__(self, registry: CollectorRegistry, worker_dir: Path | None) -> None:
        self.registry = registry
        self.worker_dir = worker_dir
        """Where `--workers N` worker processes write their figures (None: one worker)."""
        self.participant: RunMetrics | None = None
        self.url = ""
        """Where it serves them (http://HOST:PORT/metrics)."""
        self._run: tuple[Callable[[], dict[str, int]], str] | None = None
        self._last: dict[str, int] | None = None
        self._settled = False
        registry.register(LiveCollector(self._live))

    def participant_for(self, migration: str) -> RunMetrics:
        """The figures this process updates when it works on partitions itself."""
        if self.participant is None:
            self.participant = RunMetrics(migration, self.registry)
        return self.participant

    def follow(self, figures: Callable[[], dict[str, int]], migration: str) -> None:
        """Serve the run-wide figures `figures` reads (`partitions.run_figures`) from now on."""
        self._run = (figures, migration)

    def settle(self) -> None:
        """The run is over: read its figures one last time; serve those from now on."""
        self._read()
        self._settled = True

    def _read(self) -> dict[str, int] | None:
        if self._run is not None and not self._settled:
            with contextlib.suppress(Exception):  # the server is gone: the last figures read
                self._last = self._run[0]()
        return self._last

    def _live(self) -> Iterator[Metric]:
        read = self._read()
        if read is None or self._run is None:
            return
        migration = self._run[1]
        for key, name, doc in _RUN_FIGURES:
            family = GaugeMetricFamily(name, doc, labels=["migration"])
            family.add_metric([migration], float(read[key]))
            yield family


@contextmanager
def exporting(config: MetricsConfig | None, workers: int) -> Iterator[Exporter | None]:
    """Serve a run's metrics while the block runs, and `config.linger_s` after it."""
    if config is None:
        yield None
        return
    with ExitStack() as stack:
        worker_dir = None
        registry = CollectorRegistry()
        if workers > 1:
            worker_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ishan-m-")))
            registry = multiprocess.merged(worker_dir)
        exporter = Exporter(registry, worker_dir)
        server = stack.enter_context(serving(registry, config))
        assert server is not None
        exporter.url = server.url
        yield exporter


def worker_metrics(migration: str) -> RunMetrics | None:
    """The figures of a `--workers N` worker process, when its parent serves metrics."""
    return RunMetrics(migration) if multiprocess.in_worker() else None
