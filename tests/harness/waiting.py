"""Waiting, with a deadline and a message that says what did not happen.

`wait_until(condition)` polls; `port_answers` and `http_answers` are the conditions most
waits are for. A process given to `wait_until` ends the wait early when it exits.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any


class WaitTimeout(AssertionError):
    """The condition did not hold in time, or the process waited on exited first."""


def wait_until(
    condition: Callable[[], object],
    timeout: float = 20.0,
    *,
    what: str = "the condition",
    interval: float = 0.05,
    process: subprocess.Popen[Any] | None = None,
) -> None:
    """Call `condition` until it returns something true; `WaitTimeout` after `timeout` s, or
    as soon as `process` (when given) has exited."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise WaitTimeout(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def port_answers(port: int, address: str = "127.0.0.1") -> bool:
    """Whether a TCP connection to `address:port` is accepted."""
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def http_answers(url: str) -> bool:
    """Whether a GET of `url` answers with a success status."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            response.read()
            return bool(200 <= response.status < 300)
    except OSError:
        return False


def wait_port(port: int, address: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Until something accepts connections on `address:port`."""
    wait_until(lambda: port_answers(port, address), timeout, what=f"{address}:{port} to answer")


def wait_http(
    url: str, process: subprocess.Popen[Any] | None = None, timeout: float = 15.0
) -> None:
    """Until `url` answers a GET with a success status (or `process` exits)."""
    wait_until(lambda: http_answers(url), timeout, what=f"{url} to answer", process=process)
