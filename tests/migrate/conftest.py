"""A real MongoDB-wire-protocol server (SecantusDB's `secantusd-py`) for the migrate tests.

One server per session on 127.0.0.1, port 0 (the bound port is read from its log line); each
test gets its own database. The server is a test-only dependency and is never imported.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pymongo
import pytest

from .server import ServerError, secantus_server

_databases = itertools.count()


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[str]:
    """The base URI of a running server (no database in it)."""
    try:
        with secantus_server() as uri:
            yield uri
    except ServerError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def mongo_uri(mongo_server: str) -> str:
    """A URI naming a fresh database for this test."""
    return f"{mongo_server}/t{next(_databases)}"


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
        target = client[f"t{next(_databases)}"]
        for name in ("users", "orders"):
            docs = list(source[name].find())
            if docs:
                target[name].insert_many(docs)
        return target

    yield copy
    client.close()
