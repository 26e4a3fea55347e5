"""What a run reports back: its summary, its counts and the documents that failed
(its settings are in `config.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_ERRORS_KEPT = 100
SAMPLE_SIZE = 5


@dataclass(frozen=True)
class DocumentError:
    """A document whose callback (or whose writes) failed."""

    doc_id: Any
    error: str


class Tally:
    """Counts keyed by (collection, name): operations requested or results reported."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}

    def add(self, collection: str, name: str, amount: int = 1) -> None:
        if amount:
            per = self.counts.setdefault(collection, {})
            per[name] = per.get(name, 0) + amount

    def merge(self, other: Tally) -> None:
        for collection, per in other.counts.items():
            for name, amount in per.items():
                self.add(collection, name, amount)

    def total(self) -> int:
        return sum(sum(per.values()) for per in self.counts.values())

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> Tally:
        tally = cls()
        for row in rows:
            tally.add(row["collection"], row["name"], int(row["count"]))
        return tally

    def as_rows(self) -> list[dict[str, Any]]:
        """As a list (collection names may contain dots, which field names should not)."""
        return [
            {"collection": collection, "name": name, "count": amount}
            for collection, per in sorted(self.counts.items())
            for name, amount in sorted(per.items())
        ]


@dataclass
class RunSummary:
    """The outcome of `run_migration`; `status` is the changelog status it left."""

    migration: str
    run_id: str
    status: str
    dry_run: bool
    resumed: bool
    backup: bool
    processed: int = 0
    error_count: int = 0
    errors: list[DocumentError] = field(default_factory=list)
    operations: Tally = field(default_factory=Tally)
    results: Tally = field(default_factory=Tally)
    restored: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0
    log_path: Path | None = None
    stop_reason: str | None = None
    workers: int = 1
    logs: list[str] = field(default_factory=list)
    """Every participant's log, as `host:path` for the ones of other hosts."""
    joined: bool = False
    """This process joined a run started elsewhere; the counts are its own."""

    @property
    def docs_per_s(self) -> float:
        return self.processed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def add_error(self, doc_id: Any, error: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(DocumentError(doc_id, error))

    def as_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "run_id": self.run_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "resumed": self.resumed,
            "backup": self.backup,
            "processed": self.processed,
            "errors": self.error_count,
            "failed_documents": [{"_id": e.doc_id, "error": e.error} for e in self.errors],
            "operations": self.operations.counts,
            "results": self.results.counts,
            "restored_before_resume": self.restored,
            "samples": self.samples,
            "elapsed_s": round(self.elapsed_s, 3),
            "docs_per_s": round(self.docs_per_s, 1),
            "log": None if self.log_path is None else str(self.log_path),
            "logs": self.logs,
            "workers": self.workers,
            "joined": self.joined,
            "stop_reason": self.stop_reason,
        }
