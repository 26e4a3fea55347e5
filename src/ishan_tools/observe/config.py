"""`MetricsConfig`: where a command-line run serves its Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MetricsConfig"]


@dataclass(frozen=True)
class MetricsConfig:
    """`--metrics-port`, `--metrics-host`, `--metrics-linger`.

    `port` 0 picks a free port (the server's `port` says which); `linger_s` keeps serving
    the final figures that long after the run, so that a short run is still scraped.
    """

    port: int
    host: str = "127.0.0.1"
    linger_s: float = 0.0
