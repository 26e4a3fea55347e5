"""A real MongoDB-wire-protocol server (SecantusDB's `secantusd-py`) for the migrate tests.

One server per session on 127.0.0.1, port 0 (the bound port is read from its log line); each
test gets its own database. The server is a test-only dependency and is never imported.
"""

from __future__ import annotations

import itertools
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest

LISTENING = re.compile(r"secantus listening on 127\.0\.0\.1:(\d+)")
_databases = itertools.count()


def _server_command() -> list[str]:
    local = Path(sys.executable).with_name("secantusd-py")
    exe = str(local) if local.exists() else shutil.which("secantusd-py")
    if exe is None:
        pytest.fail("secantusd-py not found: pip install -e '.[test]'")
    return [
        exe,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--storage-path",
        ":memory:",
        "--log-level",
        "INFO",
    ]


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[str]:
    """The base URI of a running server (no database in it)."""
    process = subprocess.Popen(
        _server_command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:  # keep reading, or a full pipe would block the server
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=drain, daemon=True).start()
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            try:
                match = LISTENING.search(lines.get(timeout=1))
            except queue.Empty:
                if process.poll() is not None:
                    pytest.fail(f"secantusd-py exited with {process.returncode}")
                continue
            port = int(match.group(1)) if match else None
        if port is None:
            pytest.fail("secantusd-py did not report its port")
        uri = f"mongodb://127.0.0.1:{port}"
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=500)
        while True:
            try:
                client.admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        client.close()
        yield uri
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
