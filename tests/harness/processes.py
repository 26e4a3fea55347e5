"""Stopping the real server processes that tests and benchmarks start."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Terminate, wait up to `timeout` seconds, then kill: the process is gone on return."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
