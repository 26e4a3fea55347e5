"""The figures of several worker processes, summed on the one port their parent serves.

This is prometheus_client's multiprocess mode: a worker started with `worker_env(path)` in
its environment writes every counter, histogram and gauge it updates into memory-mapped
files under `path` (one set per process id); the parent's `merged` registry reads them all
at each scrape and adds them up (gauges by their `multiprocess_mode`: `livesum` for what
only a live worker holds, `max` for a figure every worker knows). Files of a worker that
exited stay, so its counters still count after it is gone; `worker_exited` drops its live
gauges. The parent itself never sets the variable, so its own metrics stay in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

ENV = "PROMETHEUS_MULTIPROC_DIR"


def worker_env(path: Path) -> dict[str, str]:
    """The environment of a worker process whose metrics the parent sums from `path`."""
    return {**os.environ, ENV: str(path)}


def in_worker() -> bool:
    """Whether this process writes its metrics for a parent to sum (see `worker_env`)."""
    return bool(os.environ.get(ENV))


def merged(path: Path, registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """A registry (new, or `registry`) that serves the sum of the workers writing to `path`."""
    registry = registry or CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    return registry


def worker_exited(pid: int, path: Path) -> None:
    """Forget the live gauges of a worker process that exited (its counters stay)."""
    mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
