"""`--max-rate` and `ishan migrate throttle`: one rate limit for the whole run, across
workers, changed while the run goes on. Real server, real CLI, real worker processes.

No upper bound on time anywhere: a slow machine only makes runs slower. The lower bounds have
slack: with a full bucket (one second's worth) N documents at R docs/s take at least
(N - R) / R seconds.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

from .helpers import FIXTURES, insert_users, ishan, ishan_process, run_script, wait_for
from .test_resume import done_batch
from .test_workers import finish, slow_script, workers_of

SLACK = 0.9
DOCS = Path(__file__).resolve().parents[2] / "docs" / "migrate"


def least_seconds(documents: int, rate: float) -> float:
    """The shortest time `documents` can take at `rate` with a full one-second bucket."""
    return SLACK * (documents - rate) / rate


def processed(db: Any) -> int:
    return sum(int(p.get("processed", 0)) for p in db["_ishan_partitions"].find())


def test_max_rate_holds_a_one_process_run_and_shrinks_its_batches(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=120, orders_per_user=1)
    result, summary = run_script(
        mongo_uri, "inc_visits.py", tmp_path, "--max-rate", "40", "--batch-size", "100"
    )
    assert result.exit_code == 0, result.output
    assert summary["status"] == "applied" and summary["processed"] == 120
    assert summary["elapsed_s"] >= least_seconds(120, 40)
    # while limited a batch holds at most 40 / 4 = 10 documents (the run has one partition)
    assert done_batch(db, "inc_visits") == math.ceil(120 / 10)
    assert {u["visits"] for u in db.users.find()} == {1}
    record = db["_ishan_migrations"].find_one({"_id": "inc_visits"}) or {}
    assert record["runs"][0]["max_rate"] == 40

    # without a limit the same run is two batches of 100
    again, unlimited = run_script(
        mongo_uri, "inc_visits.py", tmp_path, "--force", "--batch-size", "100"
    )
    assert again.exit_code == 0 and unlimited["processed"] == 120, again.output
    assert done_batch(db, "inc_visits") == 2

    # a dry run keeps the limit too, in its own process
    dry, dry_summary = run_script(
        mongo_uri, "inc_visits.py", tmp_path, "--dry-run", "--max-rate", "40"
    )
    assert dry.exit_code == 0 and dry_summary["processed"] == 120, dry.output
    assert dry_summary["elapsed_s"] >= least_seconds(120, 40)


def test_two_workers_share_one_limit(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, users=500, orders_per_user=1)
    process = ishan_process(
        "migrate", "run", FIXTURES / "inc_visits.py", "--uri", mongo_uri, "-q", "--json",
        "--workers", "2", "--max-rate", "50", log_dir=tmp_path / "logs",
    )  # fmt: skip
    out, err = finish(process)
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert summary["status"] == "applied" and summary["processed"] == 500
    assert summary["workers"] == 2 and len(summary["logs"]) == 2
    assert summary["elapsed_s"] >= least_seconds(500, 50)  # a limit per worker would halve it
    assert {u["visits"] for u in db.users.find()} == {1}
    # both workers took part, in batches of at most 50 / 4 = 12 documents
    assert done_batch(db, "inc_visits") >= math.ceil(500 / 12)
    workers = [p for p in db["_ishan_participants"].find({"role": "worker"})]
    assert len(workers) == 2 and all(w["processed"] > 0 for w in workers)


def test_throttle_changes_a_running_migration(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    users, rate = 2000, 10
    insert_users(db, users=users, orders_per_user=1)
    script = slow_script(tmp_path)
    process = ishan_process(
        "migrate", "run", script, "--uri", mongo_uri, "-q", "--json", "--workers", "2",
        "--max-rate", rate, log_dir=tmp_path / "logs",
    )  # fmt: skip
    try:
        wait_for(
            lambda: (
                len([w for w in workers_of(db) if w["partition"]]) == 2
                or process.poll() is not None
            ),
            "two workers at work",
        )
        status = json.loads(ishan("migrate", "status", "--uri", mongo_uri, "--json").stdout)
        table = ishan("migrate", "status", "--uri", mongo_uri).stdout
        assert status["run"]["max_rate"] == rate and "rate limit: 10 docs/s" in table

        # under the limit, both workers together: at most one second's worth ahead of it
        first, started = processed(db), time.monotonic()
        time.sleep(2.0)
        during = processed(db) - first
        window = time.monotonic() - started
        assert process.poll() is None, "the run ended under a limit it could not keep"
        assert 0 < during <= rate * (window + 1) + 2 * (rate // 4)

        slower = ishan("migrate", "throttle", "slow_inc", "4", "--uri", mongo_uri)
        assert slower.exit_code == 0, slower.output
        assert "rate limit 4 docs/s (was 10 docs/s)" in slower.stdout
        table = ishan("migrate", "status", "--uri", mongo_uri).stdout
        assert "rate limit: 4 docs/s" in table

        lifted = ishan("migrate", "throttle", "slow_inc", "0", "--uri", mongo_uri, "--json")
        assert lifted.exit_code == 0, lifted.output
        assert json.loads(lifted.stdout) | {"run_id": None} == {
            "migration": "slow_inc", "run_id": None, "max_rate": 0, "was": 4,
        }  # fmt: skip
        status = json.loads(ishan("migrate", "status", "--uri", mongo_uri, "--json").stdout)
        assert status["run"] is None or status["run"]["max_rate"] == 0
        # lifted: the rest (about 2,000 documents, 200 s at the old limit) goes at full speed
        out, err = finish(process, timeout=150)
    finally:
        finish(process, timeout=5)
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert summary["status"] == "applied" and summary["processed"] == users
    assert {u["visits"] for u in db.users.find()} == {1}


def test_throttle_and_max_rate_errors_are_one_line(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, users=10, orders_per_user=1)
    unknown = ishan("migrate", "throttle", "nope", "5", "--uri", mongo_uri)
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == (
        f"error: no migration named 'nope' in database '{db.name}' "
        "(`ishan migrate status` lists them)"
    )
    negative = ishan("migrate", "throttle", "nope", "-5", "--uri", mongo_uri)
    assert negative.exit_code == 2
    assert negative.stderr.strip() == "error: RATE must be 0 (no limit) or more, not -5"
    result, _ = run_script(mongo_uri, "inc_visits.py", tmp_path)
    assert result.exit_code == 0, result.output
    idle = ishan("migrate", "throttle", "inc_visits.py", "5", "--uri", mongo_uri)
    assert idle.exit_code == 1 and len(idle.stderr.strip().splitlines()) == 1
    assert "inc_visits is not running (it is applied)" in idle.stderr
    bad = ishan("migrate", "run", FIXTURES / "inc_visits.py", "--uri", mongo_uri, "--force",
                "--max-rate", "-1")  # fmt: skip
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "error: --max-rate must be 0 (no limit) or more, not -1"
    join = ishan("migrate", "run", FIXTURES / "inc_visits.py", "--uri", mongo_uri, "--join",
                 "--max-rate", "5")  # fmt: skip
    assert join.exit_code == 2 and "drop --max-rate" in join.stderr
    assert {u["visits"] for u in db.users.find()} == {1}  # nothing ran twice


def test_the_docs_document_max_rate_and_throttle() -> None:
    section = (DOCS / "index.md").read_text(encoding="utf-8")
    for command in ("run", "throttle"):
        help_text = ishan("migrate", command, "--help").stdout
        options = set(re.findall(r"(--[a-z][a-z-]+)", help_text)) - {"--help"}
        missing = sorted(option for option in options if f"`{option}" not in section)
        assert not missing, f"ishan migrate {command}: {missing} not in the docs"
    assert "`throttle NAME RATE" in section
