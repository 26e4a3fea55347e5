"""Fixtures of the cluster tests: a `Network` of hosts, the servers they run, the figures.

Every test gets a fresh network (namespaces, bridge) and leaves nothing behind, pass or fail.
Without root (or without `ip`/`nft`) every test fails with one line saying how to run them.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.net import Host, Network, missing_requirement
from tests.harness.waiting import port_answers, wait_until

BIN = Path(sys.executable).parent
ISHAN = str(BIN / "ishan")
REDIS_PORT = 6379
MONGO_PORT = 27017
SITE_PORT = 8000


@pytest.fixture(autouse=True)
def _root() -> None:
    """Every cluster test fails (never skips) with one line where it cannot run."""
    why = missing_requirement()
    if why is not None:
        pytest.fail(why, pytrace=False)


@pytest.fixture
def net() -> Iterator[Network]:
    network = Network()
    try:
        yield network
    finally:
        network.close()


def start_redis(net: Network, host: Host, workdir: Path) -> str:
    """redis-server on `host`'s address; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run scripts/test, which installs it")
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(REDIS_PORT), "--bind", host.address, "--dir", str(workdir)]
    argv += ["--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"]
    process = net.popen(host, argv, log=workdir / "redis.log")
    wait_until(
        lambda: port_answers(REDIS_PORT, host.address),
        10,
        what=f"redis-server on {host}",
        process=process,
    )
    return f"redis://{host.address}:{REDIS_PORT}/0"


def start_mongo(net: Network, host: Host, workdir: Path) -> str:
    """secantusd-py (the MongoDB-wire server) on `host`'s address; its base URI."""
    local = BIN / "secantusd-py"
    exe = str(local) if local.exists() else shutil.which("secantusd-py")
    if exe is None:
        pytest.fail("secantusd-py not found: pip install -e '.[test]'")
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [exe, "--host", host.address, "--port", str(MONGO_PORT), "--storage-path", ":memory:"]
    process = net.popen(host, argv, log=workdir / "secantus.log")
    wait_until(
        lambda: port_answers(MONGO_PORT, host.address),
        60,
        what=f"secantusd-py on {host}",
        process=process,
    )
    return f"mongodb://{host.address}:{MONGO_PORT}"


def start_site(net: Network, host: Host, workdir: Path, pages: int, delay: float) -> str:
    """The small site of `tests.cluster.site` on `host`; its start URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "tests.cluster.site", host.address, str(pages), str(delay)]
    process = net.popen(host, argv, log=workdir / f"site-{host.name}.log")
    wait_until(
        lambda: port_answers(SITE_PORT, host.address),
        20,
        what=f"the site on {host}",
        process=process,
    )
    return f"http://{host.address}:{SITE_PORT}/"


@dataclass
class Figures:
    """What a scenario measured; printed (pytest -s) and put in assertion messages."""

    scenario: str
    faults: int = 0
    items: int = 0
    item_kind: str = "items"
    lost: int = 0
    twice: int = 0
    recovery_s: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        recovery = "-" if self.recovery_s is None else f"{self.recovery_s:.1f} s"
        extra = "".join(f", {key} {value}" for key, value in self.notes.items())
        return (
            f"[cluster] {self.scenario}: faults {self.faults}, {self.item_kind} {self.items}, "
            f"lost {self.lost}, done twice {self.twice}, heal to recovery {recovery}{extra}"
        )

    def show(self) -> None:
        print(self.line(), flush=True)


class Clock:
    """Seconds since the heal (or any mark)."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def mark(self) -> None:
        self.start = time.monotonic()

    def since(self) -> float:
        return time.monotonic() - self.start
