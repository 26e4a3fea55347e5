"""The migrations' examples in docs/migrate run against the `secantusd-py` server.

Each runs in a fresh database holding the walkthrough's `users` and `orders`, with
`MONGODB_URI` naming it. A block titled `NAME.py` is a migration script: it is written to
that file and run with `run_migration`; the other blocks are programs, run after every
script of their page is written, and print what the page shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pymongo
import pytest

from ishan_tools.migrate import ConnectionConfig, RunConfig, run_migration
from tests.harness.mongo_server import database_uri

from ..docs_examples import Example, examples
from .conftest import new_database_name
from .helpers import insert_users

MIGRATE_EXAMPLES = [example for example in examples("migrate") if not example.not_run]


def fresh_database(mongo_server: str) -> str:
    uri = database_uri(mongo_server, new_database_name())
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(uri)
    insert_users(client.get_default_database())
    client.close()
    return uri


def test_the_migrate_pages_have_scripts_and_programs() -> None:
    assert any(example.title for example in MIGRATE_EXAMPLES)
    assert any(not example.title for example in MIGRATE_EXAMPLES)


@pytest.mark.parametrize("example", MIGRATE_EXAMPLES, ids=lambda example: example.id)
def test_migrate_example_runs(
    example: Example, mongo_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    uri = fresh_database(mongo_server)
    monkeypatch.setenv("MONGODB_URI", uri)
    if example.title:
        script = tmp_path / example.title
        script.write_text(example.code)
        summary = run_migration(ConnectionConfig(uri=uri), RunConfig(script=script))
        assert summary.status == "applied" and summary.processed > 0
        assert not summary.errors
        return
    for other in examples("migrate"):
        if other.page == example.page and other.title:
            (tmp_path / other.title).write_text(other.code)
    printed = example.run()
    if example.output is not None:
        assert printed == example.output
