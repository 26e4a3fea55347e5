"""`ishan migrate run --metrics-port`: what a user scrapes matches the run's summary.

The sum of `--workers N` processes on the parent's one port is checked by a real Prometheus
in tests/observe/test_prometheus.py.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.observe.served import Served, value

from .helpers import FIXTURES, insert_users

FAILS = """
primary = "users"
collections = ["users"]


def migrate(doc, users, write_log):
    if doc["_id"] % 10 == 3:
        raise ValueError("no")
    users.update_one({"_id": doc["_id"]}, {"$set": {"seen": True}})
"""


def test_a_run_serves_documents_batches_and_partitions(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, 120)
    script = FIXTURES / "inc_visits.py"
    run = Served(
        "migrate", "run", str(script), "--uri", mongo_uri, "--json", "--batch-size", "25",
        "--log-dir", str(tmp_path / "logs"),
    )  # fmt: skip
    try:
        summary = run.wait_for_json()
        samples = run.samples()
    finally:
        assert run.stop() == 130  # Ctrl-C while it lingers
    name = {"migration": "inc_visits"}
    assert summary["status"] == "applied"
    assert value(samples, "ishan_migrate_documents_processed_total", **name) == 120
    assert value(samples, "ishan_migrate_documents_failed_total", **name) == 0
    assert value(samples, "ishan_migrate_documents_skipped_total", **name) == 0
    written = "ishan_migrate_documents_written_total"
    assert value(samples, written, collection="users", **name) == 120
    assert value(samples, written, collection="orders", **name) == 240
    assert value(samples, "ishan_migrate_batch_duration_seconds_count", **name) == 5
    assert value(samples, "ishan_migrate_callback_duration_seconds_count", **name) == 120
    assert value(samples, "ishan_migrate_partitions_done", **name) == 1
    assert value(samples, "ishan_migrate_partitions", **name) == 1
    assert value(samples, "ishan_migrate_run_documents_passed", **name) == 120
    assert value(samples, "ishan_migrate_leases_held", **name) == 0
    assert value(samples, "ishan_migrate_rate_limit_documents_per_second", **name) == 0
    assert value(samples, "ishan_migrate_partition_takeovers_total", **name) == 0


def test_the_rate_limit_is_served_while_it_holds(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, 60)
    run = Served(
        "migrate", "run", str(FIXTURES / "inc_visits.py"), "--uri", mongo_uri, "--json",
        "--max-rate", "300", "--log-dir", str(tmp_path / "logs"),
    )  # fmt: skip
    try:
        summary = run.wait_for_json()
        samples = run.samples()
    finally:
        run.stop()
    name = {"migration": "inc_visits"}
    assert summary["status"] == "applied"
    assert value(samples, "ishan_migrate_rate_limit_documents_per_second", **name) == 300
    assert value(samples, "ishan_migrate_documents_processed_total", **name) == 60


def test_failed_documents_are_counted(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, 40)
    script = tmp_path / "fails.py"
    script.write_text(FAILS)
    run = Served(
        "migrate", "run", str(script), "--uri", mongo_uri, "--json", "--continue-on-error",
        "--log-dir", str(tmp_path / "logs"),
    )  # fmt: skip
    try:
        run.wait_for_json()
        samples = run.samples()
    finally:
        run.stop()
    name = {"migration": "fails"}
    assert value(samples, "ishan_migrate_documents_failed_total", **name) == 4
    assert value(samples, "ishan_migrate_documents_processed_total", **name) == 36
    assert value(samples, "ishan_migrate_callback_duration_seconds_count", **name) == 40


def test_the_parent_of_two_workers_serves_their_sum_and_sigterm_cleans_up(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, 200)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    run = Served(
        "migrate", "run", str(FIXTURES / "inc_visits.py"), "--uri", mongo_uri, "--json",
        "--workers", "2", "--batch-size", "20", "--log-dir", str(tmp_path / "logs"),
        env={"TMPDIR": str(tmp)},
    )  # fmt: skip
    try:
        summary = run.wait_for_json()
        samples = run.samples()
        assert [p.name for p in tmp.iterdir()] != []  # the workers' figures, while it lingers
    finally:
        assert run.stop(signal.SIGTERM) == 130
    name = {"migration": "inc_visits"}
    assert summary["workers"] == 2 and summary["status"] == "applied"
    assert value(samples, "ishan_migrate_documents_processed_total", **name) == 200
    assert value(samples, "ishan_migrate_callback_duration_seconds_count", **name) == 200
    partitions = value(samples, "ishan_migrate_partitions", **name)  # 2, or more after splits
    assert partitions is not None and partitions >= 2
    assert value(samples, "ishan_migrate_partitions_done", **name) == partitions
    assert value(samples, "ishan_migrate_leases_held", **name) is None  # no worker alive
    assert list(tmp.iterdir()) == []  # SIGTERM while lingering: the directory is removed
