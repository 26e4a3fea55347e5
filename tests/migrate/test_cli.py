"""The command line: connection errors, status, settings from the environment, real processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ishan_tools.cli import app
from tests.harness.mongo_server import hosts_of

from .helpers import FIXTURES, insert_users, ishan

SCRIPT = FIXTURES / "add_full_name.py"


@pytest.mark.parametrize(
    ("uri", "code", "message"),
    [
        ("notmongo://localhost/db", 2, "invalid MongoDB URI notmongo://localhost/db"),
        ("mongodb://127.0.0.1:1/db", 1, "cannot reach mongodb://127.0.0.1:1/db"),
        ("mongodb://user:hunter2@127.0.0.1:1/db", 1, "cannot reach mongodb://user:***@127.0.0.1"),
    ],
)
def test_bad_uri_is_one_line_and_writes_nothing(
    tmp_path: Path, uri: str, code: int, message: str
) -> None:
    result = ishan(
        "migrate", "run", SCRIPT, "--uri", uri, "--timeout", "0.5", "--log-dir", tmp_path / "l"
    )
    assert result.exit_code == code
    assert message in result.stderr
    assert "hunter2" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "l").exists()


def test_missing_database_and_bad_credentials(mongo_server: str, tmp_path: Path) -> None:
    no_db = ishan("migrate", "status", "--uri", mongo_server)
    assert no_db.exit_code == 2 and "no database given" in no_db.stderr
    bad_auth = ishan(
        "migrate", "status", "--uri", f"mongodb://who:wrong@{hosts_of(mongo_server)}/db"
    )
    assert bad_auth.exit_code == 1
    assert "authentication failed for mongodb://who:***@" in bad_auth.stderr
    with_db = ishan("migrate", "status", "--uri", mongo_server, "--db", "named")
    assert with_db.exit_code == 0 and "no migrations yet" in with_db.stdout


def test_wrong_primary_collection_is_refused_before_writing(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=2)
    result = ishan("migrate", "run", FIXTURES / "wrong_collection.py", "--uri", mongo_uri)
    assert result.exit_code == 1
    assert "primary collection 'userz' does not exist" in result.stderr
    assert "(collections: orders, users)" in result.stderr
    assert "_ishan_migrations" not in db.list_collection_names()


def test_bad_script_errors_reach_the_user(mongo_uri: str) -> None:
    result = ishan("migrate", "run", FIXTURES / "syntax_error.py", "--uri", mongo_uri)
    assert result.exit_code == 1 and "line 3: syntax error" in result.stderr
    missing = ishan("migrate", "run", "nope.py", "--uri", mongo_uri)
    assert missing.exit_code == 2 and "migration script not found: nope.py" in missing.stderr


def test_option_conflicts_are_usage_errors(mongo_uri: str, db: Any) -> None:
    insert_users(db, users=2)
    both = ishan("migrate", "run", SCRIPT, "--uri", mongo_uri, "--resume", "--force")
    assert both.exit_code == 2 and "pick one" in both.stderr
    dry = ishan("migrate", "run", SCRIPT, "--uri", mongo_uri, "--dry-run", "--resume")
    assert dry.exit_code == 2
    resume_new = ishan("migrate", "run", SCRIPT, "--uri", mongo_uri, "--resume")
    assert resume_new.exit_code == 1 and "nothing to resume" in resume_new.stderr


def test_status_flags_changed_scripts_and_lists_pending(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=3)
    scripts = tmp_path / "migrations"
    scripts.mkdir()
    shutil.copy(SCRIPT, scripts / "add_full_name.py")
    shutil.copy(FIXTURES / "inc_visits.py", scripts / "inc_visits.py")
    ishan(
        "migrate",
        "run",
        scripts / "add_full_name.py",
        "--uri",
        mongo_uri,
        "-q",
        "--log-dir",
        tmp_path,
    )
    table = ishan("migrate", "status", "--uri", mongo_uri, "--dir", scripts)
    assert table.exit_code == 0, table.output
    assert "add_full_name" in table.stdout and "applied" in table.stdout
    assert "unchanged" in table.stdout and "pending" in table.stdout
    with (scripts / "add_full_name.py").open("a") as script:
        script.write("# edited after it was applied\n")
    changed = ishan("migrate", "status", "--uri", mongo_uri, "--dir", scripts)
    assert "CHANGED since applied" in changed.stdout
    rows = json.loads(
        ishan("migrate", "status", "--uri", mongo_uri, "--dir", scripts, "--json").stdout
    )
    by_name = {row["name"]: row for row in rows["migrations"]}
    assert by_name["add_full_name"]["script_changed"] is True
    assert by_name["add_full_name"]["processed"] == 3
    assert by_name["inc_visits"]["status"] == "pending"
    assert rows["lock"] is None


def test_settings_come_from_the_environment_below_flags(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=5)
    env = {
        "MONGODB_URI": mongo_uri,
        "ISHAN_MIGRATE_BATCH_SIZE": "2",
        "ISHAN_MIGRATE_LOG_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(app, ["migrate", "run", str(SCRIPT), "--json"], env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["log"].startswith(str(tmp_path))
    record = db["_ishan_migrations"].find_one()
    assert record["runs"][0]["batch_size"] == 2
    flag = CliRunner().invoke(
        app, ["migrate", "run", str(FIXTURES / "inc_visits.py"), "-q", "--batch-size", "4"], env=env
    )
    assert flag.exit_code == 0, flag.output
    assert db["_ishan_migrations"].find_one({"_id": "inc_visits"})["runs"][0]["batch_size"] == 4


def test_installed_command_short_form_and_progress(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, users=6)
    exe = Path(sys.executable).with_name("ishan")
    env = {**os.environ, "MONGODB_URI": mongo_uri}
    script = tmp_path / "add_names.py"
    created = subprocess.run(
        [exe, "migrate", "new", "add_names", "--dir", tmp_path], capture_output=True, text=True
    )
    assert created.returncode == 0, created.stderr
    dry = subprocess.run(
        [exe, "migrate", script, "--dry-run"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was written" in dry.stdout
    ran = subprocess.run(
        [exe, "migrate", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stderr
    assert "add_names run" in ran.stdout and "applied" in ran.stdout
    assert db.users.find_one({"_id": 0})["full_name"] == "Ada L0"
    logs = sorted((tmp_path / "migrationLogs").glob("add_names-*.jsonl"))
    assert len(logs) == 2  # the dry run's and the run's, under the current directory
    failed = subprocess.run(
        [exe, "migrate", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: add_names was already applied")
