"""Starting and stopping `secantusd-py`, a MongoDB-wire-protocol server, on 127.0.0.1.

Used by the test fixture and by `bench.migrate`. The server is a test-only dependency
(GPL): it runs as a separate process and is never imported.
"""

from __future__ import annotations

import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymongo

from tests.harness.processes import stop_process

LISTENING = re.compile(r"secantus listening on 127\.0\.0\.1:(\d+)")


def database_uri(base: str, name: str) -> str:
    """`base` (a MongoDB URI, with or without a database and options) naming database `name`."""
    scheme, _, rest = base.partition("://")
    hosts, _, path = rest.partition("/")
    options = path.partition("?")[2]
    return f"{scheme}://{hosts}/{name}" + (f"?{options}" if options else "")


def hosts_of(base: str) -> str:
    """The host list of a MongoDB URI, without credentials."""
    return base.partition("://")[2].partition("/")[0].rpartition("@")[2]


class ServerError(RuntimeError):
    """The server could not be found or did not start."""


def _command() -> list[str]:
    local = Path(sys.executable).with_name("secantusd-py")
    exe = str(local) if local.exists() else shutil.which("secantusd-py")
    if exe is None:
        raise ServerError("secantusd-py not found: pip install -e '.[test]'")
    options = ["--host", "127.0.0.1", "--port", "0", "--storage-path", ":memory:"]
    return [exe, *options, "--log-level", "INFO"]


@contextmanager
def secantus_server(start_timeout: float = 60.0) -> Iterator[str]:
    """Run a server on port 0; yield its base URI once it answers a ping; stop it after."""
    process = subprocess.Popen(
        _command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:  # keep reading, or a full pipe would block the server
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=drain, daemon=True).start()
    try:
        uri = _wait_until_listening(process, lines, time.monotonic() + start_timeout)
        yield uri
    finally:
        stop_process(process)


def _wait_until_listening(
    process: subprocess.Popen[str], lines: queue.Queue[str], deadline: float
) -> str:
    port = None
    while port is None:
        if time.monotonic() > deadline:
            raise ServerError("secantusd-py did not report its port")
        try:
            match = LISTENING.search(lines.get(timeout=1))
        except queue.Empty:
            if process.poll() is not None:
                raise ServerError(f"secantusd-py exited with {process.returncode}") from None
            continue
        port = int(match.group(1)) if match else None
    uri = f"mongodb://127.0.0.1:{port}"
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=500)
    try:
        while True:
            try:
                client.admin.command("ping")
                return uri
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        client.close()
