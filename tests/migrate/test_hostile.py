"""Hostile scripts, through the real `ishan` executable against the real server: every error
is one line (a traceback only with --debug), an exit is never a silent success, and the run
log's last line states how the run really ended."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .helpers import insert_users

ISHAN = Path(sys.executable).with_name("ishan")


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(f'primary = "users"\n{body}\n', encoding="utf-8")
    return path


def _ishan(*args: Any) -> subprocess.CompletedProcess[str]:
    command = [str(ISHAN), *(str(a) for a in args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _migrate(uri: str, script: Path, tmp_path: Path, *extra: Any) -> Any:
    return _ishan("migrate", "run", script, "--uri", uri, "--log-dir", tmp_path / "logs", *extra)


def _log_lines(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    (path,) = (tmp_path / "logs").glob(f"{name}-*.jsonl")
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _status(db: Any, name: str) -> str:
    return str(db["_ishan_migrations"].find_one({"_id": name})["status"])


UNPRINTABLE = """
class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("cannot print me")

def migrate(doc, ctx):
    raise Unprintable()
"""
MULTI_LINE = """
def migrate(doc, ctx):
    raise ValueError("the first line says what\\n" + "and then a flood\\n" * 200)
"""


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        (
            "unknown_operator",
            'filter = {"visits": {"$frobnicate": 1}}\ndef migrate(doc, ctx):\n    pass',
            "$frobnicate",
        ),
        ("unprintable", UNPRINTABLE, "Unprintable: (its message could not be printed"),
        ("multi_line", MULTI_LINE, "ValueError: the first line says what ..."),
    ],
)
def test_script_and_server_errors_are_one_line_and_a_traceback_only_with_debug(
    mongo_uri: str, db: Any, tmp_path: Path, name: str, body: str, expected: str
) -> None:
    insert_users(db, users=5)
    script = _script(tmp_path, name, body)
    result = _migrate(mongo_uri, script, tmp_path)
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ") and expected in result.stderr
    assert "Traceback" not in result.stderr and "flood" not in result.stderr
    again = _script(tmp_path, f"{name}_again", body)  # a fresh migration, with --debug
    logs = tmp_path / "logs"
    debug = _ishan("--debug", "migrate", "run", again, "--uri", mongo_uri, "--log-dir", logs)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_system_exit_in_migrate_fails_the_document_with_a_message(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=5)
    body = "def migrate(doc, ctx):\n    if doc['_id'] == 2:\n        raise SystemExit(0)\n"
    body += "    ctx['users'].update_one({'_id': doc['_id']}, {'$set': {'seen': True}})"
    script = _script(tmp_path, "exits", body)
    result = _migrate(mongo_uri, script, tmp_path)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "document 2" in result.stderr and "migrate() called exit(0)" in result.stderr
    assert _status(db, "exits") == "failed"  # not left "interrupted"
    assert db.users.count_documents({"seen": True}) == 2  # documents 0 and 1 are kept
    # with --continue-on-error the exit fails that document only, and the run goes on
    kept = _script(tmp_path, "exits_kept", body)
    result = _migrate(mongo_uri, kept, tmp_path, "--continue-on-error", "--json")
    summary = json.loads(result.stdout)
    assert result.returncode == 0 and summary["status"] == "applied" and summary["errors"] == 1
    assert "migrate() called exit(0)" in summary["failed_documents"][0]["error"]


@pytest.mark.parametrize("call", ["sys.exit(0)", "exit()", "raise SystemExit(3)"])
def test_exit_at_a_scripts_top_level_is_a_clear_error(
    mongo_uri: str, db: Any, tmp_path: Path, call: str
) -> None:
    insert_users(db, users=3)
    body = f"import sys\n{call}\ndef migrate(doc, ctx):\n    pass"
    result = _migrate(mongo_uri, _script(tmp_path, "exits_early", body), tmp_path)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "exits_early.py called exit(" in result.stderr and "while loading" in result.stderr
    assert db["_ishan_migrations"].find_one({"_id": "exits_early"}) is None  # nothing run


def test_the_run_logs_last_line_states_the_runs_real_end(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=5)
    good = _script(tmp_path, "fine", "def migrate(doc, ctx):\n    ctx.log('saw', doc['_id'])")
    assert _migrate(mongo_uri, good, tmp_path).returncode == 0
    lines = _log_lines(tmp_path, "fine")
    assert lines[-2]["action"] == "summary" and lines[-2]["content"]["status"] == "done"
    assert lines[-1]["action"] == "end" and lines[-1]["content"]["status"] == "applied"
    assert lines[-1]["content"]["processed"] == 5

    bad = _script(tmp_path, "breaks", "def migrate(doc, ctx):\n    1 / (doc['_id'] - 3)")
    assert _migrate(mongo_uri, bad, tmp_path).returncode == 1
    lines = _log_lines(tmp_path, "breaks")
    assert lines[-2]["content"]["status"] == "failed"
    end = lines[-1]
    assert end["action"] == "end" and end["content"]["status"] == "failed"
    assert "ZeroDivisionError" in end["content"]["stop_reason"]
