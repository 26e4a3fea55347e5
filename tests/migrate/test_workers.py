"""Several workers in one run: real worker processes, a SIGKILLed worker, --join, the lock."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ishan_tools.migrate.parallel.partitions import split_ids
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
from .test_resume import done_batch

SLOW_INC = """
import time

primary = "users"
collections = ["users", "orders"]


def migrate(doc, users, orders, write_log):
    time.sleep(0.004)  # an external call
    users.update_one({"_id": doc["_id"]}, {"$inc": {"visits": 1}})
    orders.update_many({"user_id": doc["_id"]}, {"$inc": {"total": 1}})
"""


def slow_script(directory: Path) -> Path:
    path = directory / "slow_inc.py"
    path.write_text(SLOW_INC)
    return path


def workers_of(db: Any) -> list[dict[str, Any]]:
    return list(db["_ishan_participants"].find({"role": "worker", "state": "working"}))


def finish(process: subprocess.Popen[str], timeout: float = 180) -> tuple[str, str]:
    try:
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def log_lines(paths: list[str]) -> list[dict[str, Any]]:
    """The lines of the logs that exist (a killed worker that logged nothing left none)."""
    files = [Path(path) for path in paths if Path(path).exists()]
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def test_split_ids_makes_equal_spans_in_bounded_memory() -> None:
    plan = split_ids(iter(range(100_000)), 7)
    counts = [span.count for span in plan.spans]
    assert sum(counts) == 100_000 and max(counts) - min(counts) <= 2 * 32  # 4,096 ids kept
    assert plan.spans[0].lo == 0 and plan.spans[-1].hi == 99_999 and plan.spans[-1].hi_inclusive
    assert all(a.hi == b.lo for a, b in zip(plan.spans, plan.spans[1:], strict=False))
    assert plan.rest is None
    limited = split_ids(iter(range(10)), 3, limit=7)
    assert [(s.lo, s.hi, s.count) for s in limited.spans] == [(0, 2, 2), (2, 4, 2), (4, 6, 3)]
    assert limited.rest is not None and (limited.rest.lo, limited.rest.hi) == (7, 9)
    assert [s.count for s in split_ids(iter(range(2)), 16).spans] == [1, 1]
    assert split_ids(iter([]), 4).spans == []


def test_three_workers_one_sigkilled_touch_every_document_once(
    mongo_uri: str, db: Any, copy_db: Callable[[Any], Any], tmp_path: Path
) -> None:
    insert_users(db, users=450)
    original = snapshot(db, "users", "orders")
    reference = copy_db(db)
    script = slow_script(tmp_path)
    one, one_summary = run_script(database_uri(mongo_uri, reference.name), script, tmp_path)
    assert one_summary["status"] == "applied", one.output

    process = ishan_process(
        "migrate", "run", script, "--uri", mongo_uri, "-q", "--json", "--workers", "3",
        "--batch-size", "20", "--lease-seconds", "2", log_dir=tmp_path / "logs",
    )  # fmt: skip
    try:
        wait_for(
            lambda: (
                len([w for w in workers_of(db) if w["processed"] >= 40 and w["partition"]]) >= 2
                or process.poll() is not None
            ),
            "three workers at work",
        )
        busy = [w for w in workers_of(db) if w["partition"]]
        assert process.poll() is None and len(busy) >= 2, "the run ended before the kill"
        victim = random.choice(busy)
        os.kill(victim["pid"], signal.SIGKILL)
    finally:
        out, err = finish(process)
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert summary["status"] == "applied" and summary["workers"] == 3
    assert 450 - 20 <= summary["processed"] <= 450  # a killed worker's last count may be lost
    assert contents(db, "users") == contents(reference, "users")
    assert contents(db, "orders") == contents(reference, "orders")
    assert {u["visits"] for u in db.users.find()} == {1}
    assert len(summary["logs"]) == 3
    took_over = [line for line in log_lines(summary["logs"]) if line["action"] == "took over"]
    assert [line["content"]["partition"] for line in took_over] == [victim["partition"]]
    assert db["_ishan_locks"].count_documents({}) == 0

    result = ishan("migrate", "rollback", "slow_inc", "--uri", mongo_uri, "--yes")
    assert result.exit_code == 0, result.output
    assert snapshot(db, "users", "orders") == original
    assert db["_ishan_backup"].count_documents({}) == 0


def test_join_from_a_second_process(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, users=1000, orders_per_user=1)
    script = slow_script(tmp_path)
    nothing = ishan("migrate", "run", script, "--uri", mongo_uri, "--join")
    assert nothing.exit_code == 1 and "nothing to join: no migration is running" in nothing.stderr
    first = ishan_process(
        "migrate", "run", script, "--uri", mongo_uri, "-q", "--json", "--batch-size", "20",
        log_dir=tmp_path / "logs",
    )  # fmt: skip
    try:
        wait_for(
            lambda: (
                db["_ishan_locks"].find_one({"settings": {"$exists": True}}) is not None
                or first.poll() is not None
            ),
            "the run",
        )
        changed = tmp_path / "elsewhere" / "slow_inc.py"
        changed.parent.mkdir()
        changed.write_text(SLOW_INC + "# edited\n")
        refused = ishan("migrate", "run", changed, "--uri", mongo_uri, "--join")
        assert refused.exit_code == 1
        assert "is not the script the run started with" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        limited = ishan("migrate", "run", script, "--uri", mongo_uri, "--join", "--limit", "5")
        assert limited.exit_code == 2 and "drop --limit" in limited.stderr
        joiner = ishan_process(
            "migrate", "run", script, "--uri", mongo_uri, "-q", "--json", "--join",
            log_dir=tmp_path / "logs",
        )  # fmt: skip
        joined_out, joined_err = finish(joiner)
    finally:
        out, err = finish(first)
    assert first.returncode == 0, err
    assert joiner.returncode == 0, joined_err
    summary, joined = json.loads(out), json.loads(joined_out)
    assert summary["status"] == "applied" and summary["processed"] == 1000
    assert joined["joined"] and 0 < joined["processed"] < 1000
    assert joined["run_id"] == summary["run_id"]
    assert len(summary["logs"]) == 2
    assert {u["visits"] for u in db.users.find()} == {1}
    assert {o["total"] for o in db.orders.find()} == {u * 10 + 1 for u in range(1000)}
    # a worker of --workers N that starts after the others finished the run is not a failure
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "uri": mongo_uri, "db": db.name, "timeout_s": 10.0, "script": str(script),
                "log_dir": str(tmp_path / "logs"), "run_id": summary["run_id"], "backup": True,
            }
        )
    )  # fmt: skip
    late = subprocess.run(
        [sys.executable, "-m", "ishan_tools.migrate.parallel.worker", str(spec), "4"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (late.returncode, late.stderr) == (0, "")


def test_one_migration_at_a_time_with_several_participants(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=600, orders_per_user=1)
    script = slow_script(tmp_path)
    process = ishan_process(
        "migrate", "run", script, "--uri", mongo_uri, "-q", "--workers", "2",
        "--batch-size", "20", log_dir=tmp_path / "logs",
    )  # fmt: skip
    try:
        wait_for(
            lambda: (
                len([w for w in workers_of(db) if w["partition"]]) == 2
                or process.poll() is not None
            ),
            "two workers at work",
        )
        other = run_script(mongo_uri, "add_full_name.py", tmp_path)[0]
        assert other.exit_code == 1 and "is locked by migration 'slow_inc'" in other.stderr
        again = ishan("migrate", "run", script, "--uri", mongo_uri)
        assert again.exit_code == 1
        assert "slow_inc is already running" in again.stderr and "--join" in again.stderr
        status = json.loads(ishan("migrate", "status", "--uri", mongo_uri, "--json").stdout)
        table = ishan("migrate", "status", "--uri", mongo_uri).stdout
        assert process.poll() is None, "the run ended before the status was read"
    finally:
        _out, err = finish(process)
    assert process.returncode == 0, err
    run = status["run"]
    assert run["migration"] == "slow_inc"
    roles = sorted(member["role"] for member in run["participants"])
    assert roles == ["supervisor", "worker", "worker"]
    workers = [m for m in run["participants"] if m["role"] == "worker"]
    for member in workers:
        assert member["state"] == "working" and member["partition"]
        assert f"{member['host']}:{member['pid']}" in table
    assert sum(part["count"] for part in run["partitions"]) == 600
    leased = [part for part in run["partitions"] if part["state"] == "leased"]
    assert {part["pid"] for part in leased} == {member["pid"] for member in workers}
    assert "partition" in table and "progress" in table
    assert db.users.count_documents({"full_name": {"$exists": True}}) == 0
    after = json.loads(ishan("migrate", "status", "--uri", mongo_uri, "--json").stdout)
    assert after["run"] is None and after["migrations"][0]["processed"] == 600


def test_sigterm_of_the_parent_stops_the_workers_and_resume_finishes(
    mongo_uri: str, db: Any, copy_db: Callable[[Any], Any], tmp_path: Path
) -> None:
    insert_users(db, users=300)
    reference = copy_db(db)
    script = slow_script(tmp_path)
    assert run_script(database_uri(mongo_uri, reference.name), script, tmp_path)[0].exit_code == 0
    process = ishan_process(
        "migrate", "run", script, "--uri", mongo_uri, "-q", "--workers", "2",
        "--batch-size", "20", log_dir=tmp_path / "logs",
    )  # fmt: skip
    try:
        wait_for(lambda: done_batch(db, "slow_inc") >= 4 or process.poll() is not None, "work")
        pids = [w["pid"] for w in workers_of(db)]
        assert process.poll() is None and pids
        process.send_signal(signal.SIGTERM)
    finally:
        _out, err = finish(process)
    assert process.returncode == 130 and "interrupted" in err
    for pid in pids:
        wait_for(lambda pid=pid: not os.path.exists(f"/proc/{pid}"), f"worker {pid} to exit")
    record = db["_ishan_migrations"].find_one()
    assert record["status"] == "interrupted" and "Ctrl-C" in record["runs"][0]["stop_reason"]
    assert db["_ishan_locks"].count_documents({}) == 0
    assert db["_ishan_partitions"].count_documents({"state": "leased"}) == 0
    result, summary = run_script(mongo_uri, script, tmp_path, "--resume", "--workers", "3")
    assert summary["status"] == "applied", result.output
    assert contents(db, "users") == contents(reference, "users")
    assert contents(db, "orders") == contents(reference, "orders")


def test_limit_dry_run_and_errors_keep_their_meaning_with_workers(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=40)
    before = snapshot(db, "users", "orders")
    dry, dry_summary = run_script(
        mongo_uri, "inc_visits.py", tmp_path, "--dry-run", "--workers", "3"
    )
    assert dry_summary["status"] == "dry run" and dry_summary["processed"] == 40, dry.output
    assert snapshot(db, "users", "orders") == before

    def visited() -> list[int]:
        return sorted(u["_id"] for u in db.users.find({"visits": 1}))

    args = ("--workers", "3", "--batch-size", "4")
    result, summary = run_script(mongo_uri, "inc_visits.py", tmp_path, *args, "--limit", "25")
    assert summary["status"] == "interrupted" and summary["processed"] == 25, result.output
    assert visited() == list(range(25))
    result, summary = run_script(
        mongo_uri, "inc_visits.py", tmp_path, *args, "--resume", "--limit", "10"
    )
    assert summary is not None, result.output
    assert summary["processed"] == 10 and visited() == list(range(35)), result.output
    result, summary = run_script(mongo_uri, "inc_visits.py", tmp_path, "--resume")
    assert summary["status"] == "applied" and summary["processed"] == 5, result.output
    assert {u["visits"] for u in db.users.find()} == {1}

    bobs = FIXTURES / "fails_on_bob.py"
    result, summary = run_script(mongo_uri, bobs, tmp_path, *args, "--continue-on-error")
    assert summary["status"] == "applied", result.output
    assert sorted(e["_id"] for e in summary["failed_documents"]) == list(range(1, 40, 5))
    assert db.users.count_documents({"seen": True}) == 32

    plain = ("--workers", "2", "--no-backup")
    result, summary = run_script(mongo_uri, "add_full_name.py", tmp_path, *plain)
    assert summary["status"] == "applied" and summary["backup"] is False, result.output
    assert db["_ishan_backup"].count_documents({"m": "add_full_name"}) == 0
    assert db.users.count_documents({"full_name": {"$exists": True}}) == 40
    refused = ishan("migrate", "rollback", "add_full_name", "--uri", mongo_uri, "--yes")
    assert refused.exit_code == 1 and "used --no-backup" in refused.stderr
