"""`--workers N`: N local worker processes in one run, and this process watching them.

Each worker is `python -m ishan_tools.migrate.parallel.worker SPEC INDEX` in a session of its own (a
terminal's Ctrl-C reaches only this process) that gets SIGTERM if this process dies (Linux).
This process is a participant too (a supervisor: it works on no partition), so the run is not
closed while it watches. Ctrl-C or SIGTERM here sends SIGTERM to the workers (each gives its
partition back at once) and waits for them; in the process that started the run it also asks
every participant to stop, leaving the run interrupted and resumable (in one that joined,
the run goes on elsewhere).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ishan_tools._process import die_with_parent
from ishan_tools.migrate import lock
from ishan_tools.migrate.changelog import INTERRUPTED
from ishan_tools.migrate.config import RunSettings
from ishan_tools.migrate.connection import ConnectionConfig
from ishan_tools.migrate.parallel.board import Board
from ishan_tools.migrate.parallel.participants import Heartbeat
from ishan_tools.migrate.parallel.worker import INTERRUPTED_REASON
from ishan_tools.migrate.runner import Progress
from ishan_tools.migrate.script import MigrationScript

POLL_S = 0.25
STOP_WAIT_S = 30.0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def supervise(
    database: Any,
    script: MigrationScript,
    settings: RunSettings,
    member: dict[str, Any],
    connection: ConnectionConfig,
    log_dir: Path,
    workers: int,
    progress: Progress | None = None,
    *,
    stops_run: bool = True,
    metrics_dir: Path | None = None,
) -> list[str]:
    """Run `workers` worker processes until they exit; what the ones that failed said.
    `stops_run`: a Ctrl-C here stops every participant (else only these workers);
    `metrics_dir`: where the workers write the metrics this process serves."""
    heartbeat = Heartbeat(
        database, settings.run_id, member["id"], None, settings.lease_s, settings.lock_ttl_s
    )
    board = Board(database, script.name, settings.plan, member)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
    with tempfile.TemporaryDirectory(prefix="ishan-migrate-") as tmp:
        spec = Path(tmp) / "spec.json"
        spec.touch(mode=0o600)
        spec.write_text(
            json.dumps(
                {
                    "uri": connection.uri,
                    "db": connection.db or database.name,
                    "timeout_s": connection.timeout_s,
                    "script": str(script.path.resolve()),
                    "log_dir": str(log_dir.resolve()),
                    "run_id": settings.run_id,
                    "backup": settings.backup,
                }
            ),
            encoding="utf-8",
        )
        errors = [Path(tmp) / f"w{index}.err" for index in range(1, workers + 1)]
        processes: list[subprocess.Popen[bytes]] = []
        heartbeat.start()
        try:
            for index, error in enumerate(errors, 1):
                processes.append(_start(spec, index, error, metrics_dir))
            while any(process.poll() is None for process in processes):
                if progress is not None:
                    progress(*board.progress())
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            if stops_run:
                with contextlib.suppress(Exception):
                    lock.request_stop(database, settings.run_id, INTERRUPTED, INTERRUPTED_REASON)
            raise
        finally:
            _stop(processes)
            heartbeat.close()
            if metrics_dir is not None:
                from ishan_tools.observe import multiprocess

                for process in processes:
                    multiprocess.worker_exited(process.pid, metrics_dir)
            if in_main:
                signal.signal(signal.SIGTERM, previous)
        return [
            _failure(index, process.returncode, error)
            for index, (process, error) in enumerate(zip(processes, errors, strict=True), 1)
            if process.returncode not in (0, None)
        ]


def _start(
    spec: Path, index: int, error: Path, metrics_dir: Path | None
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if metrics_dir is not None:  # the worker writes its figures there for this process
        from ishan_tools.observe import multiprocess

        env = multiprocess.worker_env(metrics_dir)
    command = [sys.executable, "-m", "ishan_tools.migrate.parallel.worker", str(spec), str(index)]
    with error.open("wb") as stderr:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM the workers still running, wait for them, then kill what is left."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    for process in running:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _failure(index: int, code: int, error: Path) -> str:
    lines = error.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    said = f": {lines[-1].removeprefix('error: ')}" if lines else ""
    how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
    return f"worker {index} {how}{said}"
