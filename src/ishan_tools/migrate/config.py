"""Settings of a run: how to run one script (`RunConfig`) and what every participant of a
run shares (`RunSettings`, published in the lock document)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_BATCH_SIZE = 1000
DEFAULT_LEASE_S = 30.0


@dataclass(frozen=True)
class RunConfig:
    """How to run one migration script. `batch_size=None`: the script's, else 1,000.

    `workers` processes share the run (1: this process does the work); `join` takes part in
    the run of this script already going on (another machine's, say), with its settings;
    `lease_s` is how long a partition stays leased to a worker that stopped renewing it;
    `max_rate` limits the whole run to that many documents (callbacks) per second.
    """

    script: Path
    batch_size: int | None = None
    limit: int | None = None
    dry_run: bool = False
    resume: bool = False
    force: bool = False
    backup: bool = True
    continue_on_error: bool = False
    log_dir: Path = Path("migrationLogs")
    lock_ttl_s: float = 300.0
    workers: int = 1
    join: bool = False
    lease_s: float = DEFAULT_LEASE_S
    max_rate: float | None = None


@dataclass(frozen=True)
class RunSettings:
    """What every participant of one run shares; published in the lock document."""

    run_id: str
    run_index: int
    plan: str
    mode: str
    batch_size: int
    backup: bool
    continue_on_error: bool
    lease_s: float
    lock_ttl_s: float
    limit: int | None

    def as_document(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> RunSettings:
        return cls(**{name: doc[name] for name in cls.__dataclass_fields__})
