"""Shared fixtures: the real embedded index, a real uvicorn server, and CSV files made from
the embedded data (a Kaggle-shaped file, broken files)."""

from __future__ import annotations

import csv
import gzip
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ishan_tools.players import Index
from ishan_tools.players.api import create_app
from ishan_tools.players.data import EMBEDDED_DATA
from tests.harness.waiting import wait_until

# The original project's example: a midfielder's six ratings, as the library, the CLI and the
# find_similar_players body take them.
EXAMPLE_RATINGS = {
    "pace": 75,
    "shooting": 72,
    "passing": 85,
    "dribbling": 80,
    "defending": 65,
    "physic": 70,
}
FIND_SIMILAR_BODY = {
    "player_positions": "midfielder",
    "speed": 75,
    "physic": 70,
    "defense": 65,
    "dribbling": 80,
    "shooting": 72,
    "passing": 85,
}
EXAMPLE_ARGS = [
    "--position",
    "midfielder",
    "--pace",
    "75",
    "--shooting",
    "72",
    "--passing",
    "85",
    "--dribbling",
    "80",
    "--defending",
    "65",
    "--physic",
    "70",
]


@pytest.fixture(scope="session")
def index() -> Index:
    return Index.from_file()


def embedded_rows() -> list[list[str]]:
    """The embedded CSV as rows of cells, header first."""
    with gzip.open(EMBEDDED_DATA, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """`app` under a real uvicorn on 127.0.0.1, port 0: its base URL, then it is stopped."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 20, what="uvicorn", interval=0.01)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def api(index: Index) -> Iterator[httpx.Client]:
    """The FastAPI app under a real uvicorn on 127.0.0.1, port 0, and a client for it."""
    with (
        uvicorn_server(create_app(index)) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client
