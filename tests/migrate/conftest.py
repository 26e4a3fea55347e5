"""A real MongoDB-wire-protocol server (SecantusDB's `secantusd-py`) for the migrate tests.

One server per session on 127.0.0.1, port 0 (the bound port is read from its log line); each
test gets its own database. The server is a test-only dependency and is never imported.
With `ISHAN_TEST_MONGODB_URI` set (a real MongoDB or replica set), the tests use that server
instead, in databases named `ishan_test_<random>_<n>` that are dropped at the end.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pymongo
import pytest

from tests.harness.mongo_server import ServerError, database_uri, secantus_server

_databases = itertools.count()
EXTERNAL = os.environ.get("ISHAN_TEST_MONGODB_URI")
_PREFIX = f"ishan_test_{secrets.token_hex(3)}_" if EXTERNAL else "t"
_created: list[str] = []


def new_database_name() -> str:
    name = f"{_PREFIX}{next(_databases)}"
    _created.append(name)
    return name


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[str]:
    """The base URI of a running server (no database in it)."""
    if EXTERNAL:
        yield EXTERNAL
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(EXTERNAL)
        for name in _created:
            client.drop_database(name)
        client.close()
        return
    try:
        with secantus_server() as uri:
            yield uri
    except ServerError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def mongo_uri(mongo_server: str) -> str:
    """A URI naming a fresh database for this test."""
    return database_uri(mongo_server, new_database_name())


@pytest.fixture
def db(mongo_uri: str) -> Iterator[Any]:
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_uri)
    yield client.get_default_database()
    client.close()


@pytest.fixture
def copy_db(mongo_server: str) -> Iterator[Callable[[Any], Any]]:
    """Copies a database's users and orders into a fresh one (for side-by-side runs)."""
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_server)

    def copy(source: Any) -> Any:
        target = client[new_database_name()]
        for name in ("users", "orders"):
            docs = list(source[name].find())
            if docs:
                target[name].insert_many(docs)
        return target

    yield copy
    client.close()
