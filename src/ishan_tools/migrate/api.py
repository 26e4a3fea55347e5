"""The library's entry points: each connects, does one job under the lock, and reports back."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bson import MaxKey, MinKey
from pymongo.errors import OperationFailure, PyMongoError

from ishan_tools.errors import MigrationError, UsageError
from ishan_tools.migrate import backup, changelog
from ishan_tools.migrate.config import DEFAULT_BATCH_SIZE, RunConfig, RunSettings
from ishan_tools.migrate.connection import ConnectionConfig, connected, server_message
from ishan_tools.migrate.context import new_run_id
from ishan_tools.migrate.lock import (
    MigrationLock,
    current_holder,
    force_unlock,
    is_stale,
    utcnow,
)
from ishan_tools.migrate.logs import RunLog
from ishan_tools.migrate.parallel import participants, partitions, session, throttle
from ishan_tools.migrate.parallel.supervisor import supervise
from ishan_tools.migrate.parallel.worker import ServerLost, work
from ishan_tools.migrate.report import RunSummary
from ishan_tools.migrate.runner import FAILED, Progress, Runner
from ishan_tools.migrate.script import MigrationScript, load_script

if TYPE_CHECKING:
    from ishan_tools.migrate.metrics import Exporter

DRY_RUN = "dry run"


def run_migration(
    connection: ConnectionConfig,
    config: RunConfig,
    progress: Progress | None = None,
    exporter: Exporter | None = None,
) -> RunSummary:
    """Load the script, connect, run it (or dry-run it, or join its run) and return the summary.
    `exporter` (`migrate.metrics.exporting`): the metrics this run updates and serves.

    A run that stops at a failing document returns with `status == "failed"`; errors that
    prevent the run (bad script, unreachable server, lock held, refused re-run) raise.
    """
    session.check_config(config)
    script = load_script(config.script)
    try:
        with connected(connection) as database:
            if config.dry_run:
                return _dry_run(database, script, config)
            try:
                if config.join:
                    return _join(database, script, config, connection, progress, exporter)
                return _start(database, script, config, connection, progress, exporter)
            finally:
                if exporter is not None:  # its final figures, before the connection closes
                    exporter.settle()
    except PyMongoError as exc:  # e.g. an unknown operator in the script's filter
        what = "refused it" if isinstance(exc, OperationFailure) else "failed"
        raise MigrationError(f"{script.name}: the server {what}: {server_message(exc)}") from exc


def _start(
    database: Any,
    script: MigrationScript,
    config: RunConfig,
    connection: ConnectionConfig,
    progress: Progress | None,
    exporter: Exporter | None = None,
) -> RunSummary:
    """Open a run; work in it here (one worker) or watch N worker processes do it."""
    run_id = new_run_id()
    alone = config.workers == 1
    member = participants.new_member(participants.WORKER if alone else participants.SUPERVISOR)
    log = RunLog(config.log_dir, script.name, run_id) if alone else None
    started = time.perf_counter()
    settings = session.start(
        database, script, config, run_id, member, None if log is None else str(log.path)
    )
    _, failures, _ = _take_part(
        database,
        script,
        settings,
        member,
        log,
        connection,
        config,
        progress,
        stops_run=True,
        exporter=exporter,
    )
    session.wait_until_closed(database, script.name, settings)
    summary = session.run_summary(database, script.name, settings, config.workers)
    summary.elapsed_s = time.perf_counter() - started
    summary.log_path = Path(summary.logs[0]) if len(summary.logs) == 1 else None
    if log is not None:
        log.end(summary)
    if failures and summary.status != changelog.APPLIED:
        raise MigrationError(
            f"{'; '.join(failures)}; {script.name} is {summary.status}: continue with --resume"
        )
    return summary


def _join(
    database: Any,
    script: MigrationScript,
    config: RunConfig,
    connection: ConnectionConfig,
    progress: Progress | None,
    exporter: Exporter | None = None,
) -> RunSummary:
    """Take part in the run of this script going on now, with its settings."""
    settings = session.joinable(database, script, config)
    alone = config.workers == 1
    member = participants.new_member(participants.WORKER if alone else participants.SUPERVISOR)
    log = None
    if alone:
        worker = f"{member['host']}-{member['pid']}"
        log = RunLog(config.log_dir, script.name, settings.run_id, worker)
    started = time.perf_counter()
    session.enlist(database, script.name, settings, member, None if log is None else str(log.path))
    mine, _, closed = _take_part(
        database,
        script,
        settings,
        member,
        log,
        connection,
        config,
        progress,
        stops_run=False,
        exporter=exporter,
    )
    summary = session.run_summary(database, script.name, settings, config.workers)
    if closed is None and summary.status == changelog.RUNNING:
        summary.stop_reason = "the run goes on in its other participants"
    elif closed is not None and log is not None:
        log.end(summary)
    if mine is not None:  # this process's own counts
        mine.status, mine.joined, mine.stop_reason = summary.status, True, summary.stop_reason
        mine.elapsed_s = time.perf_counter() - started
        return mine
    summary.joined = True
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _take_part(
    database: Any,
    script: MigrationScript,
    settings: RunSettings,
    member: dict[str, Any],
    log: RunLog | None,
    connection: ConnectionConfig,
    config: RunConfig,
    progress: Progress | None,
    *,
    stops_run: bool,
    exporter: Exporter | None = None,
) -> tuple[RunSummary | None, list[str], str | None]:
    """Work here (with `log`: one worker) or supervise `config.workers` worker processes,
    then leave the run (unless the server is gone). Returns this process's own summary (one
    worker), what failed workers said, and what leaving reported (the run closed, or None).
    `stops_run`: a Ctrl-C here stops every participant."""
    mine, failures, closed = None, [], None
    if exporter is not None:
        plan = settings.plan
        exporter.follow(lambda: partitions.run_figures(database, script.name, plan), script.name)
    try:
        if log is not None:
            metrics = None if exporter is None else exporter.participant_for(script.name)
            mine = work(
                database,
                script,
                settings,
                member,
                log,
                progress,
                stops_run=stops_run,
                metrics=metrics,
            )
        else:
            failures = supervise(
                database,
                script,
                settings,
                member,
                connection,
                config.log_dir,
                config.workers,
                progress,
                stops_run=stops_run,
                metrics_dir=None if exporter is None else exporter.worker_dir,
            )
    finally:
        if not isinstance(sys.exc_info()[1], ServerLost):
            closed = session.leave(database, script.name, settings, member, mine)
    return mine, failures, closed


def _dry_run(database: Any, script: MigrationScript, config: RunConfig) -> RunSummary:
    """Every callback, nothing written (in this process, whatever `--workers` says)."""
    session.check_primary(database, script)
    run_id = new_run_id()
    settings = RunSettings(
        run_id=run_id,
        run_index=-1,
        plan=run_id,
        mode=DRY_RUN,
        batch_size=config.batch_size or script.batch_size or DEFAULT_BATCH_SIZE,
        backup=config.backup,
        continue_on_error=config.continue_on_error,
        lease_s=config.lease_s,
        lock_ttl_s=config.lock_ttl_s,
        limit=config.limit,
    )
    log = RunLog(config.log_dir, script.name, run_id)
    summary = RunSummary(
        script.name, run_id, DRY_RUN, dry_run=True, resumed=False, backup=config.backup
    )
    summary.log_path = log.path
    limit = None if not config.max_rate else throttle.LocalThrottle(config.max_rate)
    runner = Runner(database, script, settings, log, summary, throttle=limit)
    started = time.perf_counter()
    try:
        if config.limit is None:
            spans = [partitions.Span(MinKey(), MaxKey(), True, 0)]
            rest = None
        else:
            plan = partitions.scan_plan(database, script.primary, script.filter, 1, config.limit)
            spans, rest = plan.spans, plan.rest
        for number, span in enumerate(spans, 1):
            if runner.run_partition(partitions.Partition.in_memory(number, span)) == FAILED:
                break
        if rest is not None and summary.stop_reason is None:
            summary.stop_reason = f"stopped after --limit {config.limit}: more remain"
    finally:
        summary.elapsed_s = time.perf_counter() - started
        log.event("summary", summary.as_dict())
        log.close()
    return summary


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
            database[partitions.PARTITIONS].delete_many({"m": name})
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
) -> tuple[list[changelog.StatusRow], dict[str, Any] | None, dict[str, Any] | None]:
    """The changelog as rows (plus never-run scripts found in `script_dir`), the lock holder,
    and the run holding the lock (its participants and partitions), if any."""
    with connected(connection) as database:
        holder = current_holder(database)
        processed = participants.processed_by_migration(database)
        rows = changelog.status_rows(database, script_dir, processed)
        return rows, holder, session.run_view(database, holder)


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


@dataclass(frozen=True)
class RateChange:
    """What `throttle_migration` changed: the limit of a running migration, in docs/s (0: none)."""

    migration: str
    run_id: str
    before: float
    after: float


def throttle_migration(connection: ConnectionConfig, name: str, rate: float) -> RateChange:
    """Set the rate limit of `name`'s running run to `rate` documents per second (0: none);
    every participant follows it within about a second."""
    if not rate >= 0 or math.isinf(rate):
        raise UsageError(f"RATE must be 0 (no limit) or more, not {rate:g}")
    with connected(connection) as database:
        holder = current_holder(database)
        live = holder is not None and "settings" in holder and not is_stale(holder)
        if holder is None or not live or holder.get("migration") != name:
            record = changelog.get(database, name)
            if record is None:
                raise MigrationError(
                    f"no migration named {name!r} in database {database.name!r} "
                    "(`ishan migrate status` lists them)"
                )
            raise MigrationError(
                f"{name} is not running (it is {changelog.effective_status(database, record)}): "
                "give the limit of its next run with `ishan migrate run --max-rate`"
            )
        run_id = str(holder["run_id"])
        before = throttle.set_rate(database, name, run_id, rate)
        if before is None:
            raise MigrationError(
                f"run {run_id} of {name} was started by an older ishan, without a rate limit"
            )
        return RateChange(name, run_id, before, rate)
