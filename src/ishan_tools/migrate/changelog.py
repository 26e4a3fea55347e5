"""The changelog: one record per migration in `_ishan_migrations`.

A record holds the migration's status, its script checksum, `plan` (the run that split the
primary collection into the partitions now in use: each partition keeps its own checkpoint),
`image_seq` (the counter that orders before-images) and the list of its runs with their
counts (a run's counts are the sum of its participants', written when it ends).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ishan_tools.errors import MigrationError
from ishan_tools.migrate.lock import current_holder, is_stale, utcnow
from ishan_tools.migrate.script import MigrationScript, checksum_of

CHANGELOG = "_ishan_migrations"

RUNNING = "running"
INTERRUPTED = "interrupted"
APPLIED = "applied"
FAILED = "failed"
ROLLING_BACK = "rolling back"
ROLLED_BACK = "rolled back"


def get(database: Any, name: str) -> dict[str, Any] | None:
    record: dict[str, Any] | None = database[CHANGELOG].find_one({"_id": name})
    return record


def effective_status(database: Any, record: Mapping[str, Any]) -> str:
    """A record left `running` by a run that no longer holds the lock was interrupted."""
    status = str(record.get("status"))
    if status not in (RUNNING, ROLLING_BACK):
        return status
    holder = current_holder(database)
    if holder is not None and holder.get("migration") == record["_id"] and not is_stale(holder):
        return status
    return INTERRUPTED if status == RUNNING else status


def starts_over(record: Mapping[str, Any] | None, name: str, *, resume: bool, force: bool) -> bool:
    """Whether a run starts from the first document; refuses a run that must not happen.

    Called under the lock, so a record left `running` belongs to a dead run.
    """
    if record is None:
        if resume:
            raise MigrationError(f"nothing to resume: {name} has never run")
        return True
    status = INTERRUPTED if record["status"] == RUNNING else record["status"]
    if status == ROLLING_BACK:
        raise MigrationError(
            f"a rollback of {name} was interrupted: run `ishan migrate rollback {name}` again"
        )
    if resume:
        if status in (INTERRUPTED, FAILED):
            return False
        hint = " (pass --force to run it again from the start)" if status == APPLIED else ""
        raise MigrationError(f"nothing to resume: {name} is {status}{hint}")
    if status in (INTERRUPTED, FAILED):
        raise MigrationError(
            f"{name} is {status}: continue it with --resume, or undo it with "
            f"`ishan migrate rollback {name}`"
        )
    if status == APPLIED and not force:
        raise MigrationError(
            f"{name} was already applied ({record.get('applied_at'):%Y-%m-%d %H:%M} UTC); "
            "pass --force to run it again from the start"
        )
    return True


def begin_run(
    database: Any,
    script: MigrationScript,
    run: dict[str, Any],
    *,
    plan: str | None,
) -> int:
    """Mark the migration running and append `run`; returns the run's index in `runs`.

    `plan` (a run starting over) names the new plan of partitions.
    """
    now = utcnow()
    fields: dict[str, Any] = {
        "status": RUNNING,
        "checksum": script.checksum,
        "script": str(script.path),
        "primary": script.primary,
        "updated_at": now,
    }
    if plan is not None:
        fields["plan"] = plan
    record = database[CHANGELOG].find_one_and_update(
        {"_id": script.name},
        {
            "$set": fields,
            "$setOnInsert": {"created_at": now},
            "$push": {"runs": run},
        },
        upsert=True,
        return_document=True,
    )
    return len(record["runs"]) - 1


def next_image_seq(database: Any, name: str) -> int:
    """The next number of the migration's before-image order (atomic across workers)."""
    record = database[CHANGELOG].find_one_and_update(
        {"_id": name},
        {"$inc": {"image_seq": 1}},
        projection={"image_seq": 1},
        return_document=True,
    )
    return int(record["image_seq"])


def close_runs(database: Any, name: str, totals: Mapping[str, Mapping[str, int]]) -> None:
    """Give runs that never ended (killed) their counts, from their participants'."""
    record = get(database, name)
    fields: dict[str, Any] = {}
    for index, run in enumerate((record or {}).get("runs", [])):
        if "status" not in run:
            counts = totals.get(run["run_id"], {})
            fields[f"runs.{index}.status"] = INTERRUPTED
            fields[f"runs.{index}.processed"] = int(counts.get("processed", 0))
            fields[f"runs.{index}.errors"] = int(counts.get("errors", 0))
    if fields:
        database[CHANGELOG].update_one({"_id": name}, {"$set": fields})


def finish_run(
    database: Any,
    name: str,
    run_index: int,
    run_id: str,
    status: str,
    run_fields: Mapping[str, Any],
) -> bool:
    """Close the run: final status on the record and on the run, end time, counts, error
    list. Only once: False when another participant closed it first."""
    now = utcnow()
    fields: dict[str, Any] = {"status": status, "updated_at": now}
    if status == APPLIED:
        fields["applied_at"] = now
    for key, value in run_fields.items():
        fields[f"runs.{run_index}.{key}"] = value
    fields[f"runs.{run_index}.status"] = status
    fields[f"runs.{run_index}.ended_at"] = now
    query = {
        "_id": name,
        f"runs.{run_index}.run_id": run_id,
        f"runs.{run_index}.ended_at": {"$exists": False},
    }
    return bool(database[CHANGELOG].update_one(query, {"$set": fields}).matched_count)


def set_status(database: Any, name: str, status: str, **extra: Any) -> None:
    database[CHANGELOG].update_one(
        {"_id": name}, {"$set": {"status": status, "updated_at": utcnow(), **extra}}
    )


@dataclass(frozen=True)
class StatusRow:
    """One line of `ishan migrate status`."""

    name: str
    status: str
    runs: int
    processed: int
    last_run: str | None
    updated_at: Any
    script_changed: bool | None
    no_backup: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "runs": self.runs,
            "processed": self.processed,
            "last_run": self.last_run,
            "updated_at": None if self.updated_at is None else str(self.updated_at),
            "script_changed": self.script_changed,
            "no_backup": self.no_backup,
        }


def status_rows(
    database: Any, script_dir: Path | None, processed: Mapping[str, int] | None = None
) -> list[StatusRow]:
    """Every recorded migration, plus scripts in `script_dir` that have never run (pending).

    `processed`: documents per migration as its participants counted them (live runs too).
    """
    rows = []
    seen = set()
    for record in database[CHANGELOG].find().sort("_id", 1):
        name = record["_id"]
        seen.add(name)
        runs = record.get("runs") or []
        script = _find_script(script_dir, name, record.get("script"))
        changed = None if script is None else checksum_of(script) != record.get("checksum")
        rows.append(
            StatusRow(
                name=name,
                status=effective_status(database, record),
                runs=len(runs),
                processed=(processed or {}).get(
                    name, sum(int(run.get("processed", 0)) for run in runs)
                ),
                last_run=runs[-1].get("run_id") if runs else None,
                updated_at=record.get("updated_at"),
                script_changed=changed,
                no_backup=any(run.get("no_backup") for run in runs),
            )
        )
    if script_dir is not None and script_dir.is_dir():
        for path in sorted(script_dir.glob("*.py")):
            if path.stem not in seen and _looks_like_migration(path):
                rows.append(
                    StatusRow(
                        name=path.stem,
                        status="pending",
                        runs=0,
                        processed=0,
                        last_run=None,
                        updated_at=None,
                        script_changed=None,
                        no_backup=False,
                    )
                )
    return rows


def _looks_like_migration(path: Path) -> bool:
    """A never-run script worth listing: defines `primary` and `migrate` (not any .py file)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "def migrate(" in text and "primary" in text


def _find_script(script_dir: Path | None, name: str, recorded: Any) -> Path | None:
    candidates = []
    if script_dir is not None:
        candidates.append(script_dir / f"{name}.py")
    if isinstance(recorded, str):
        candidates.append(Path(recorded))
    return next((path for path in candidates if path.is_file()), None)
