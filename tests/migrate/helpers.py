"""Shared helpers of the migrate tests: sample data, exact snapshots, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from typer.testing import CliRunner, Result

from ishan_tools.cli import app
from tests.harness.waiting import wait_until

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "migrate"


def ishan(*args: Any, input: str | None = None) -> Result:
    """Run `ishan ARGS...` in-process, on a terminal 200 columns wide."""
    return CliRunner().invoke(app, [str(a) for a in args], input=input, env={"COLUMNS": "200"})


def insert_users(database: Any, users: int = 40, orders_per_user: int = 2) -> None:
    """Users with first/last names and a few orders each (deterministic)."""
    names = ["Ada", "Bob", "Cy", "Dee", "Eve"]
    database.users.insert_many(
        [
            {"_id": i, "first": names[i % 5], "last": f"L{i}", "active": i % 3 != 0, "visits": 0}
            for i in range(users)
        ]
    )
    database.orders.insert_many(
        [
            {"_id": f"o{i}-{k}", "user_id": i, "total": i * 10 + k}
            for i in range(users)
            for k in range(orders_per_user)
        ]
    )
    database.orders.create_index("user_id")


def snapshot(database: Any, *names: str) -> dict[str, list[bytes]]:
    """Every document of the collections, as exact BSON bytes, in `_id` order."""
    raw = CodecOptions(document_class=RawBSONDocument)
    return {
        name: [d.raw for d in database[name].with_options(codec_options=raw).find().sort("_id", 1)]
        for name in names
    }


def contents(database: Any, name: str, *, drop_id: bool = False) -> list[Any]:
    """Documents as dicts; with `drop_id`, without their (random) `_id`s, in a stable order."""
    docs = list(database[name].find().sort("_id", 1))
    if drop_id:
        for doc in docs:
            doc.pop("_id")
        docs.sort(key=repr)
    return docs


def ishan_process(*args: Any, log_dir: Path) -> subprocess.Popen[str]:
    """Start the installed `ishan` (next to this Python) as a real process."""
    exe = Path(sys.executable).with_name("ishan")
    command = [str(exe), *(str(a) for a in args), "--log-dir", str(log_dir)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    wait_until(condition, timeout, what=what, interval=0.02)


def run_script(uri: str, script: Path | str, tmp_path: Path, *extra: Any) -> Any:
    """`ishan migrate run SCRIPT --json` (a path, or a fixture's name): (result, summary)."""
    path = script if isinstance(script, Path) else FIXTURES / script
    result = ishan(
        "migrate", "run", path, "--uri", uri, "--log-dir", tmp_path / "logs", "--json", *extra
    )
    summary = json.loads(result.stdout) if result.stdout.startswith("{") else None
    return result, summary
