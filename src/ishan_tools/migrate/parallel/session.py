"""One run across its participants: starting it, joining it, and closing it when the last
participant leaves.

The process that starts a run takes the lock, splits the primary collection into partitions
(or, resuming, reopens the unfinished ones), opens the run in the changelog and publishes
the run's settings in the lock, which makes it joinable. Every participant leaves the same
way: it records its counts, drops out of the lock's participants, and, if the work is done
or nobody alive is left in the run, closes the run (once: the changelog update is a
compare-and-swap) and releases the lock.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ishan_tools.errors import MigrationError, UsageError
from ishan_tools.migrate import backup, changelog, lock
from ishan_tools.migrate.changelog import APPLIED, INTERRUPTED
from ishan_tools.migrate.config import DEFAULT_BATCH_SIZE, RunConfig, RunSettings
from ishan_tools.migrate.lock import MigrationLock, current_holder, is_stale, utcnow
from ishan_tools.migrate.parallel import participants, partitions, throttle
from ishan_tools.migrate.parallel.partitions import PARTITIONS
from ishan_tools.migrate.report import RunSummary
from ishan_tools.migrate.script import MigrationScript


class RunOver(MigrationError):
    """The run to join ended before this process could take part."""


JOIN_CONFLICTS = (
    ("resume", "--resume"),
    ("force", "--force"),
    ("dry_run", "--dry-run"),
    ("limit", "--limit"),
    ("max_rate", "--max-rate"),
)


def check_config(config: RunConfig) -> None:
    """Options that cannot go together (the CLI checks the ones it can see first)."""
    if config.resume and config.force:
        raise UsageError("--resume continues a run and --force starts over: pick one")
    if config.max_rate is not None and (not config.max_rate >= 0 or math.isinf(config.max_rate)):
        raise UsageError(f"--max-rate must be 0 (no limit) or more, not {config.max_rate:g}")
    if config.join:
        for attribute, flag in JOIN_CONFLICTS:
            if getattr(config, attribute):
                raise UsageError(f"--join takes the running migration's settings: drop {flag}")


def check_primary(database: Any, script: MigrationScript) -> None:
    names = database.list_collection_names()
    if script.primary not in names:
        existing = ", ".join(sorted(n for n in names if not n.startswith("_ishan_"))) or "none"
        raise MigrationError(
            f"{script.path.name}: primary collection {script.primary!r} does not "
            f"exist in database {database.name!r} (collections: {existing})"
        )


def start(
    database: Any,
    script: MigrationScript,
    config: RunConfig,
    run_id: str,
    member: dict[str, Any],
    log: str | None,
) -> RunSettings:
    """Take the lock and open run `run_id` with `member` as its first participant."""
    check_primary(database, script)
    name = script.name
    entry = {"id": member["id"], "host": member["host"], "pid": member["pid"]}
    held = MigrationLock(
        database,
        name,
        run_id,
        ttl_s=config.lock_ttl_s,
        details={"checksum": script.checksum, "participants": [entry]},
    ).acquire()
    try:
        record = changelog.get(database, name)
        restart = changelog.starts_over(record, name, resume=config.resume, force=config.force)
        batch_size = config.batch_size or script.batch_size or DEFAULT_BATCH_SIZE
        if config.backup:
            backup.ensure_index(database)
        if restart:
            plan = partitions.scan_plan(
                database, script.primary, script.filter, config.workers, config.limit
            )
            partitions.create(database, name, run_id, plan)
            plan_id = run_id
        else:
            assert record is not None
            plan_id = str(record.get("plan") or "")
            if not plan_id:
                raise MigrationError(
                    f"cannot resume {name}: an older ishan started it; roll it back with "
                    f"`ishan migrate rollback {name}` and run it again"
                )
            killed = partitions.counts_by_run(database, name, plan_id)
            changelog.close_runs(database, name, killed)
            partitions.reopen(database, name, plan_id, script.primary, script.filter, config.limit)
        mode = "resume" if not restart else "force" if config.force else "run"
        run = {
            "run_id": run_id,
            "mode": mode,
            "started_at": utcnow(),
            "processed": 0,
            "errors": 0,
            "no_backup": not config.backup,
            "batch_size": batch_size,
            "workers": config.workers,
            "lease_s": config.lease_s,
            "max_rate": config.max_rate or 0,
        }
        run_index = changelog.begin_run(database, script, run, plan=plan_id if restart else None)
        settings = RunSettings(
            run_id=run_id,
            run_index=run_index,
            plan=plan_id,
            mode=mode,
            batch_size=batch_size,
            backup=config.backup,
            continue_on_error=config.continue_on_error,
            lease_s=config.lease_s,
            lock_ttl_s=config.lock_ttl_s,
            limit=config.limit,
        )
        throttle.open_bucket(database, name, run_id, config.max_rate)
        participants.register(database, name, run_id, member, log)
        held.publish(settings.as_document())
    except BaseException:
        held.release()
        raise
    return settings


def joinable(
    database: Any, script: MigrationScript, config: RunConfig, run_id: str | None = None
) -> RunSettings:
    """The settings of the run of `script` going on now, or why it cannot be joined.
    With `run_id` (a worker sent to that run), RunOver once that run no longer goes on."""
    holder = current_holder(database)
    where = database.name
    live = holder is not None and "settings" in holder and not is_stale(holder)
    if run_id is not None and not (live and holder is not None and holder["run_id"] == run_id):
        raise RunOver(f"nothing to join: run {run_id} of {script.name} has ended")
    if holder is None or not live:
        raise MigrationError(
            f"nothing to join: no migration is running in database {where!r} "
            "(start it without --join)"
        )
    if holder.get("migration") != script.name:
        raise MigrationError(
            f"cannot join: database {where!r} is running migration "
            f"{holder.get('migration')!r}, not {script.name!r}"
        )
    if holder.get("checksum") != script.checksum:
        raise MigrationError(
            f"cannot join {script.name}: {script.path.name} is not the script the run started "
            f"with (sha256 {script.checksum[:12]} here, {str(holder.get('checksum'))[:12]} in "
            "the run): use the same file"
        )
    settings = RunSettings.from_document(holder["settings"])
    if config.backup != settings.backup:
        flag = "drop --no-backup" if settings.backup else "add --no-backup"
        raise UsageError(f"--join: the run keeps before-images per its start: {flag}")
    if config.continue_on_error and not settings.continue_on_error:
        raise UsageError("--join: the run stops at a failing document: drop --continue-on-error")
    return settings


def enlist(
    database: Any, name: str, settings: RunSettings, member: dict[str, Any], log: str | None
) -> None:
    """Become a participant of the run (after `joinable`)."""
    participants.register(database, name, settings.run_id, member, log)
    if not lock.join(database, settings.run_id, member):
        participants.leave(database, member["id"], None)
        raise RunOver(f"nothing to join: run {settings.run_id} of {name} has just ended")


def leave(
    database: Any,
    name: str,
    settings: RunSettings,
    member: dict[str, Any],
    summary: RunSummary | None,
) -> str | None:
    """Drop out of the run; close it if this was the last participant. The status it closed
    the run with, or None."""
    participants.leave(database, member["id"], summary)
    lock.leave(database, settings.run_id, member["id"])
    return close_if_last(database, name, settings)


def close_if_last(database: Any, name: str, settings: RunSettings) -> str | None:
    """Close the run if its partitions are done, or if no participant of it is alive."""
    holder = lock.run_holder(database, settings.run_id)
    if holder is None:
        return None
    scope = {"m": name, "plan": settings.plan}
    unfinished = database[PARTITIONS].count_documents(
        {**scope, "state": {"$in": [partitions.PENDING, partitions.LEASED]}}
    )
    stop = holder.get("stop") or {}
    if unfinished == 0:
        held = database[PARTITIONS].count_documents({**scope, "state": partitions.HELD})
        status = INTERRUPTED if held else APPLIED
        reason = f"stopped after --limit {settings.limit}: more remain" if held else None
    else:
        members = holder.get("participants") or []
        if participants.live_members(database, members, settings.lease_s):
            return None
        status = str(stop.get("status") or INTERRUPTED)
        reason = stop.get("reason") or (
            "every participant stopped before the end: continue with --resume"
        )
    totals = add_up(database, name, settings, status)
    totals.stop_reason = reason
    fields = {
        "processed": totals.processed,
        "errors": totals.error_count,
        "operations": totals.operations.as_rows(),
        "results": totals.results.as_rows(),
        "failed_documents": [{"_id": e.doc_id, "error": e.error} for e in totals.errors],
        "stop_reason": reason,
        "logs": totals.logs,
    }
    if changelog.finish_run(database, name, settings.run_index, settings.run_id, status, fields):
        lock.release_run(database, settings.run_id)
        return status
    return None


def wait_until_closed(database: Any, name: str, settings: RunSettings) -> None:
    """After leaving: wait while other participants are still at work, then make sure the
    run is closed (they may have died)."""
    poll = min(0.5, settings.lease_s / 4)
    while True:
        holder = lock.run_holder(database, settings.run_id)
        if holder is None:
            return
        members = holder.get("participants") or []
        if not participants.live_members(database, members, settings.lease_s):
            close_if_last(database, name, settings)
            return
        time.sleep(poll)


def add_up(database: Any, name: str, settings: RunSettings, status: str) -> RunSummary:
    """The run's summary: its participants' counts added up, with the documents processed
    and failed taken from the partitions' checkpoints (a killed worker's last report may lag
    them by a batch)."""
    summary = RunSummary(
        name,
        settings.run_id,
        status,
        dry_run=False,
        resumed=settings.mode == "resume",
        backup=settings.backup,
    )
    summary = participants.add_up(participants.of_run(database, settings.run_id), summary)
    counted = partitions.counts_of_run(database, name, settings.plan, settings.run_id)
    if counted is not None:
        summary.processed, summary.error_count = counted
    return summary


def run_summary(database: Any, name: str, settings: RunSettings, workers: int) -> RunSummary:
    """The closed run as the changelog and its participants record it."""
    record = changelog.get(database, name) or {}
    runs = record.get("runs") or []
    run = runs[settings.run_index] if settings.run_index < len(runs) else {}
    summary = add_up(database, name, settings, str(run.get("status", changelog.RUNNING)))
    summary.stop_reason = run.get("stop_reason")
    summary.workers = workers
    return summary


def run_view(database: Any, holder: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run holding the lock: its participants and partitions, for `status`."""
    if holder is None or "settings" not in holder:
        return None
    settings = RunSettings.from_document(holder["settings"])
    members = []
    for doc in participants.of_run(database, settings.run_id):
        state = doc.get("state", "working")
        if state != "left" and not participants.alive(doc, settings.lease_s):
            state = "gone"
        members.append(
            {
                "host": doc.get("host"),
                "pid": doc.get("pid"),
                "role": doc.get("role"),
                "state": state,
                "partition": doc.get("partition"),
                "processed": int(doc.get("processed", 0)),
                "errors": int(doc.get("errors", 0)),
                "log": doc.get("log"),
                "heartbeat_at": doc.get("heartbeat_at"),
            }
        )
    now = utcnow()
    parts = []
    for doc in partitions.documents(database, str(holder.get("migration")), settings.plan):
        state = doc["state"]
        expires = doc.get("expires_at")
        if state == partitions.LEASED and expires is not None and expires < now:
            state = "lease expired"
        parts.append(
            {
                "partition": doc["label"],
                "state": state,
                "host": doc.get("host"),
                "pid": doc.get("pid"),
                "done": int(doc.get("done", 0)),
                "count": int(doc.get("count", 0)),
                "processed": int(doc.get("processed", 0)),
                "lo": doc.get("lo"),
                "hi": doc.get("hi"),
                "hi_inclusive": doc.get("hi_inclusive"),
            }
        )
    return {
        "migration": holder.get("migration"),
        "run_id": settings.run_id,
        "mode": settings.mode,
        "stop": holder.get("stop"),
        "max_rate": throttle.current_rate(database, str(holder.get("migration")), settings.run_id),
        "participants": members,
        "partitions": parts,
    }
