"""Real processes for the inference tests: coordinator and workers on 127.0.0.1, port 0.

Each process prints `... listening on URL` once it serves; the helpers read that line to
learn the bound port, and stop processes with terminate, wait, kill.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ishan_tools.infer.config import default_model_path
from tests.harness.ports import free_port
from tests.harness.processes import stop_process
from tests.harness.waiting import wait_until

from .tiny_gguf import write_tiny_gguf

PRIVATE_ENV = ("HOST", "PORT", "MODEL_PATH", "WORKER_ID", "WORKER_URL", "COORDINATOR_URL")


class Proc:
    """A running `ishan infer ...` process and the URL it announced."""

    def __init__(
        self, args: list[str], timeout: float = 60.0, env: dict[str, str] | None = None
    ) -> None:
        base = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
        base.pop("ISHAN_INFER_API_KEY", None)
        env = {**base, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.args = args
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "ishan_tools", "infer", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or not self.url:
            self.stop()
            raise RuntimeError(f"{args[0]} did not start:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)
            if " listening on " in line and not self.url:
                self.url = line.rsplit(" listening on ", 1)[1].strip()
                self._ready.set()
        self._ready.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def stop(self) -> None:
        stop_process(self.popen)


ISHAN = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "ishan"


def ishan(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the installed `ishan` command as a user would."""
    return subprocess.run(
        [str(ISHAN), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def closed_port() -> int:
    """A port with nothing listening on it."""
    return free_port()


def workers_of(coordinator_url: str) -> list[dict[str, object]]:
    response = httpx.get(f"{coordinator_url}/coordinator/health/workers", timeout=5)
    response.raise_for_status()
    workers: list[dict[str, object]] = response.json()
    return workers


def healthy_ids(coordinator_url: str) -> set[str]:
    return {str(w["worker_id"]) for w in workers_of(coordinator_url) if w["healthy"]}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny-random-llama.gguf")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    return default_model_path()


class Cluster:
    """A coordinator and the workers started against it; stops everything at the end."""

    def __init__(self, model: Path, coordinator_args: list[str] | None = None) -> None:
        self.model = model
        self.procs: list[Proc] = []
        self.coordinator = self._start(["coordinator", "--port", "0", *(coordinator_args or [])])
        self.url = self.coordinator.url
        self.workers: dict[str, Proc] = {}

    def _start(self, args: list[str]) -> Proc:
        proc = Proc(args)
        self.procs.append(proc)
        return proc

    def add_worker(
        self,
        worker_id: str,
        *extra: str,
        ctx: int = 4096,
        threads: int = 1,
        model: Path | None = None,
    ) -> Proc:
        """Start a worker on the cluster's model (or `model`) and wait until it is healthy."""
        proc = self._start(
            [
                "worker",
                "--coordinator-url",
                self.url,
                "--worker-id",
                worker_id,
                "--port",
                "0",
                "--model",
                str(model or self.model),
                "--ctx",
                str(ctx),
                "--threads",
                str(threads),
                "--heartbeat-interval",
                "0.2",
                *extra,
            ]
        )
        self.workers[worker_id] = proc
        wait_until(lambda: worker_id in healthy_ids(self.url))
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture
def cluster(tiny_model: Path) -> Iterator[Cluster]:
    made: list[Cluster] = []

    def make(*coordinator_args: str, model: Path = tiny_model) -> Cluster:
        c = Cluster(model, list(coordinator_args))
        made.append(c)
        return c

    yield make  # type: ignore[misc]
    for c in made:
        c.stop()
