"""Exactly once under SIGKILL, exact rollback, and the database lock, with real processes."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ishan_tools.migrate.lock import MigrationLock
from tests.harness.mongo_server import database_uri

from .helpers import (
    FIXTURES,
    contents,
    insert_users,
    ishan,
    ishan_process,
    run_script,
    snapshot,
    wait_for,
)


def done_batch(db: Any, name: str) -> int:
    """Batches written so far, over the migration's partitions."""
    return sum(int(p.get("done_batch", 0)) for p in db["_ishan_partitions"].find({"m": name}))


def kill_mid_run(
    db: Any, uri: str, script: Path, tmp_path: Path, *args: str, sig: int = signal.SIGKILL
) -> subprocess.Popen[str]:
    """Start a run, send it `sig` once the changelog shows a few batches done; the process."""
    name = script.stem
    target = done_batch(db, name) + random.randint(2, 4)
    process = ishan_process("migrate", "run", script, "--uri", uri, "-q", *args, log_dir=tmp_path)
    try:
        wait_for(lambda: done_batch(db, name) >= target or process.poll() is not None, "progress")
        assert process.poll() is None, "the run finished before it could be stopped"
        time.sleep(random.uniform(0, 0.05))  # land anywhere inside the next batch
        process.send_signal(sig)
    finally:
        process.wait(timeout=30)
    if sig == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    return process


def test_ctrl_c_records_interrupted_and_resume_finishes(
    mongo_uri: str, db: Any, copy_db: Callable[[Any], Any], tmp_path: Path
) -> None:
    insert_users(db, users=300)
    reference = copy_db(db)
    per_reference = database_uri(mongo_uri, reference.name)
    assert (
        run_script(per_reference, "inc_visits.py", tmp_path, "--batch-size", "20")[0].exit_code == 0
    )
    path = FIXTURES / "inc_visits.py"
    process = kill_mid_run(db, mongo_uri, path, tmp_path, "--batch-size", "20", sig=signal.SIGINT)
    assert process.returncode == 130
    assert process.stderr is not None and "interrupted" in process.stderr.read()
    record = db["_ishan_migrations"].find_one()
    assert record["status"] == "interrupted"  # recorded by the run itself, not inferred
    assert "Ctrl-C" in record["runs"][0]["stop_reason"]
    assert db["_ishan_locks"].count_documents({}) == 0  # released on the way out
    result, summary = run_script(mongo_uri, "inc_visits.py", tmp_path, "--resume")
    assert summary["status"] == "applied", result.output
    assert contents(db, "users") == contents(reference, "users")
    assert contents(db, "orders") == contents(reference, "orders")


@pytest.mark.parametrize(
    ("script", "users", "batch"),
    [("inc_visits.py", 300, "20"), ("bump_order_totals.py", 150, "10")],
)
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    mongo_uri: str,
    db: Any,
    copy_db: Callable[[Any], Any],
    tmp_path: Path,
    script: str,
    users: int,
    batch: str,
) -> None:
    insert_users(db, users=users, orders_per_user=2)
    original = snapshot(db, "users", "orders")
    reference = copy_db(db)
    reference_uri = database_uri(mongo_uri, reference.name)
    result = ishan(
        "migrate",
        "run",
        FIXTURES / script,
        "--uri",
        reference_uri,
        "-q",
        "--batch-size",
        batch,
        "--log-dir",
        tmp_path,
    )
    assert result.exit_code == 0, result.output

    path = FIXTURES / script
    kill_mid_run(db, mongo_uri, path, tmp_path, "--batch-size", batch)
    status = json.loads(ishan("migrate", "status", "--uri", mongo_uri, "--json").stdout)
    assert status["migrations"][0]["status"] == "interrupted"
    table = ishan("migrate", "status", "--uri", mongo_uri).stdout
    assert "interrupted" in table and "stale lock (its process is gone)" in table
    refused = ishan("migrate", "run", path, "--uri", mongo_uri, "--log-dir", tmp_path)
    assert refused.exit_code == 1 and "continue it with --resume" in refused.stderr
    # killed a second time while resuming, then resumed to the end
    kill_mid_run(db, mongo_uri, path, tmp_path, "--batch-size", batch, "--resume")
    result = ishan(
        "migrate", "run", path, "--uri", mongo_uri, "--resume", "--json", "--log-dir", tmp_path
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "applied"

    assert contents(db, "users") == contents(reference, "users")
    assert contents(db, "orders", drop_id=True) == contents(reference, "orders", drop_id=True)
    record = db["_ishan_migrations"].find_one()
    assert [run["mode"] for run in record["runs"]] == ["run", "resume", "resume"]
    assert sum(run["processed"] for run in record["runs"]) >= users

    # rollback across the killed and resumed runs restores the original bytes exactly
    result = ishan("migrate", "rollback", script.removesuffix(".py"), "--uri", mongo_uri, "--yes")
    assert result.exit_code == 0, result.output
    assert snapshot(db, "users", "orders") == original
    assert db["_ishan_backup"].count_documents({}) == 0


def test_a_second_run_waits_for_the_lock(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, users=150)
    process = ishan_process(
        "migrate",
        "run",
        FIXTURES / "bump_order_totals.py",
        "--uri",
        mongo_uri,
        "-q",
        log_dir=tmp_path,
    )
    try:
        wait_for(
            lambda: db["_ishan_locks"].find_one() is not None or process.poll() is not None,
            "the lock",
        )
        other = run_script(mongo_uri, "add_full_name.py", tmp_path)[0]
        assert process.poll() is None, "the first run ended before the second one started"
        assert other.exit_code == 1
        assert "is locked by migration 'bump_order_totals'" in other.stderr
        assert db.users.count_documents({"full_name": {"$exists": True}}) == 0
    finally:
        assert process.wait(timeout=120) == 0
    assert db["_ishan_locks"].find_one() is None  # released at the end
    again = run_script(mongo_uri, "add_full_name.py", tmp_path)[0]
    assert again.exit_code == 0, again.output


def test_unlock_removes_a_lock_held_elsewhere(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, users=3)
    MigrationLock(db, "someone_else", "r1").acquire()
    db["_ishan_locks"].update_one({}, {"$set": {"host": "other-host"}})
    refused = run_script(mongo_uri, "add_full_name.py", tmp_path)[0]
    assert refused.exit_code == 1 and "ishan migrate unlock" in refused.stderr
    kept = ishan("migrate", "unlock", "--uri", mongo_uri, input="n\n")
    assert kept.exit_code == 1 and "locked by migration 'someone_else'" in kept.stdout
    assert db["_ishan_locks"].count_documents({}) == 1
    removed = ishan("migrate", "unlock", "--uri", mongo_uri, "--yes")
    assert removed.exit_code == 0 and "unlocked" in removed.stdout
    ran = run_script(mongo_uri, "add_full_name.py", tmp_path)[0]
    assert ran.exit_code == 0, ran.output


def test_an_expired_lock_is_taken_over(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, users=3)
    MigrationLock(db, "ghost", "r0", ttl_s=-1).acquire()  # expired at once
    db["_ishan_locks"].update_one({}, {"$set": {"host": "other-host"}})
    ran = run_script(mongo_uri, "add_full_name.py", tmp_path)[0]
    assert ran.exit_code == 0, ran.output


def test_rollback_asks_first_and_refuses_without_backups(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=8)
    original = snapshot(db, "users", "orders")
    run_script(mongo_uri, "bump_order_totals.py", tmp_path)
    changed = snapshot(db, "users", "orders")
    declined = ishan("migrate", "rollback", "bump_order_totals", "--uri", mongo_uri, input="n\n")
    assert declined.exit_code == 1
    assert "users: restore 8 documents" in declined.output
    assert "orders: restore 16 documents, delete 8 inserted ones" in declined.output
    assert snapshot(db, "users", "orders") == changed
    accepted = ishan("migrate", "rollback", "bump_order_totals", "--uri", mongo_uri, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert snapshot(db, "users", "orders") == original
    status = json.loads(ishan("migrate", "status", "--uri", mongo_uri, "--json").stdout)
    assert status["migrations"][0]["status"] == "rolled back"
    twice = ishan("migrate", "rollback", "bump_order_totals", "--uri", mongo_uri, "--yes")
    assert twice.exit_code == 1 and "already rolled back" in twice.stderr

    run_script(mongo_uri, "inc_visits.py", tmp_path, "--no-backup")
    assert db["_ishan_backup"].count_documents({"m": "inc_visits"}) == 0
    refused = ishan("migrate", "rollback", "inc_visits", "--uri", mongo_uri, "--yes")
    assert refused.exit_code == 1 and "used --no-backup" in refused.stderr
