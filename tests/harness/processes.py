"""Starting and stopping the real server processes that tests and benchmarks run."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from typing import Any


def stop_process(
    process: subprocess.Popen[Any], timeout: float = 10, *, sig: int = signal.SIGTERM
) -> None:
    """Send `sig` (SIGTERM; SIGCONT first, in case a test paused it), wait up to `timeout`
    seconds, then kill: the process is gone on return."""
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


ANNOUNCED = re.compile(r"running on (http://\S+)")


def start_server(
    argv: list[str], *, announced: re.Pattern[str] = ANNOUNCED, timeout: float = 120.0
) -> tuple[subprocess.Popen[str], str]:
    """Start `argv`, a server that writes its address on stderr (`... running on URL`, the
    `ishan ... serve --port 0` line); return the process and that URL."""
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        found = announced.search(line)
        if found:
            return process, found.group(1)
        if not line and process.poll() is not None:
            break
    stop_process(process)
    raise RuntimeError(f"{' '.join(argv)} did not report its address")
