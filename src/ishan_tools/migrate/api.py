"""The library's entry points: each connects, does one job under the lock, and reports back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ishan_tools.errors import MigrationError
from ishan_tools.migrate import backup, changelog
from ishan_tools.migrate.connection import ConnectionConfig, connected
from ishan_tools.migrate.context import new_run_id
from ishan_tools.migrate.lock import MigrationLock, current_holder, force_unlock, utcnow
from ishan_tools.migrate.report import RunConfig, RunSummary
from ishan_tools.migrate.runner import Progress, Runner
from ishan_tools.migrate.script import load_script


def run_migration(
    connection: ConnectionConfig, config: RunConfig, progress: Progress | None = None
) -> RunSummary:
    """Load the script, connect, run it (or dry-run it) and return the summary.

    A run that stops at a failing document returns with `status == "failed"`; errors that
    prevent the run (bad script, unreachable server, lock held, refused re-run) raise.
    """
    script = load_script(config.script)
    with connected(connection) as database:
        return Runner(database, script, config, progress).run()


@dataclass(frozen=True)
class RollbackPlan:
    """What `rollback_migration` would do: per collection, documents restored and deleted."""

    migration: str
    status: str
    runs: int
    counts: dict[str, dict[str, int]]


def _rollbackable(database: Any, name: str) -> dict[str, Any]:
    record = changelog.get(database, name)
    if record is None:
        raise MigrationError(
            f"no migration named {name!r} in database {database.name!r} "
            "(`ishan migrate status` lists them)"
        )
    if record["status"] == changelog.ROLLED_BACK:
        raise MigrationError(f"{name} is already rolled back")
    unbacked = [run["run_id"] for run in record.get("runs", []) if run.get("no_backup")]
    if unbacked:
        raise MigrationError(
            f"cannot roll back {name}: run {unbacked[0]} used --no-backup, so the documents it "
            "changed have no before-images; restore them from your own backup"
        )
    return record


def plan_rollback(connection: ConnectionConfig, name: str) -> RollbackPlan:
    """Count what a rollback of `name` would restore and delete (writes nothing)."""
    with connected(connection) as database:
        record = _rollbackable(database, name)
        counts = backup.rollback_plan(database, name)
        status = changelog.effective_status(database, record)
        return RollbackPlan(name, status, len(record.get("runs", [])), counts)


def rollback_migration(connection: ConnectionConfig, name: str) -> RollbackPlan:
    """Restore every document `name` changed to its earliest before-image, across all runs,
    and delete the documents it inserted. Safe to run again if it is interrupted."""
    with connected(connection) as database:
        lock = MigrationLock(database, name, f"rollback-{new_run_id()}").acquire()
        try:
            record = _rollbackable(database, name)
            changelog.set_status(database, name, changelog.ROLLING_BACK)
            counts = backup.rollback(database, name)
            changelog.set_status(
                database,
                name,
                changelog.ROLLED_BACK,
                checkpoint=None,
                rolled_back_at=utcnow(),
                rollback=[
                    {"collection": c, "restored": t["restored"], "deleted": t["deleted"]}
                    for c, t in sorted(counts.items())
                ],
            )
            return RollbackPlan(name, changelog.ROLLED_BACK, len(record.get("runs", [])), counts)
        finally:
            lock.release()


def migration_status(
    connection: ConnectionConfig, script_dir: Path | None
) -> tuple[list[changelog.StatusRow], dict[str, Any] | None]:
    """The changelog as rows (plus never-run scripts found in `script_dir`) and the lock holder."""
    with connected(connection) as database:
        return changelog.status_rows(database, script_dir), current_holder(database)


def lock_holder(connection: ConnectionConfig) -> dict[str, Any] | None:
    """Who holds the migration lock of the database, if anyone."""
    with connected(connection) as database:
        return current_holder(database)


def unlock(connection: ConnectionConfig) -> dict[str, Any] | None:
    """Remove the lock (a dead run's); its migration, if left running, becomes interrupted."""
    with connected(connection) as database:
        removed = force_unlock(database)
        if removed is not None:
            name = removed.get("migration")
            record = changelog.get(database, str(name))
            if record is not None and record["status"] == changelog.RUNNING:
                changelog.set_status(database, str(name), changelog.INTERRUPTED)
        return removed
