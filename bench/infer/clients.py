"""The clients of the infer benchmark: server processes, streamed requests, their timers."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from ishan_tools.infer.timing import StreamTimer
from tests.harness.processes import stop_process
from tests.harness.waiting import WaitTimeout, wait_until

Timed = tuple[StreamTimer, bool]  # a stream's timer, and whether it ended properly


@contextmanager
def process(
    argv: list[str], ready_url: str, ready: Callable[[httpx.Response], bool]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run the server `argv` until the block ends (SIGINT); enter, with its process, once
    `ready_url` is ready."""
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT", "MODEL_PATH")}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers() -> bool:
        try:
            return ready(httpx.get(ready_url, timeout=2))
        except httpx.HTTPError:
            return False

    try:
        try:
            wait_until(answers, 180, what=f"{argv[:4]}", interval=0.2, process=proc)
        except WaitTimeout:
            if proc.poll() is not None:
                raise SystemExit(f"{argv[:4]} exited with {proc.returncode}") from None
            raise SystemExit(f"{argv[:4]} did not start") from None
        yield proc
    finally:
        stop_process(proc, 30, sig=signal.SIGINT)


Lines = Callable[[str, dict[str, Any]], Iterator[str]]  # POST JSON, read the body's lines


def socket_lines(url: str, body: dict[str, Any]) -> Iterator[str]:
    """POST `body` as JSON and yield the response body's lines as they arrive.

    A plain socket, HTTP/1.1 chunked or close-delimited, so that the client costs the
    machine as little CPU as it can: it shares the cores with the server it measures.
    """
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    payload = json.dumps(body).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=600) as sock:
        head = (
            f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\nconnection: close\r\n"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
        )
        sock.sendall(head.encode() + payload)
        reader = sock.makefile("rb")
        status = reader.readline().split(b" ", 2)
        headers: dict[bytes, bytes] = {}
        while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if len(status) < 2 or status[1] != b"200":
            raise OSError(f"{url}: HTTP {b' '.join(status[1:]).decode(errors='replace').strip()}")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"")
        rest = b""
        while True:
            if chunked:
                size = int(reader.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                data = reader.read(size)
                reader.readline()  # the CRLF after each chunk
            else:
                data = reader.read1(65536)
                if not data:
                    break
            *lines, rest = (rest + data).split(b"\n")
            for one in lines:
                yield one.rstrip(b"\r").decode()
        if rest:
            yield rest.rstrip(b"\r").decode()


@functools.cache
def shared_httpx() -> httpx.Client:
    """For `--client httpx`: one pool for every request, as an application would have."""
    return httpx.Client(timeout=600)


def httpx_lines(url: str, body: dict[str, Any]) -> Iterator[str]:
    """The same through httpx (`--client httpx`)."""
    with shared_httpx().stream("POST", url, json=body) as response:
        response.raise_for_status()
        yield from response.iter_lines()


CLIENTS: dict[str, Lines] = {"socket": socket_lines, "httpx": httpx_lines}


def sse_stream(
    lines: Lines, url: str, body: dict[str, Any], pick: Callable[[dict[str, Any]], str | None]
) -> Timed:
    """One streamed request: its timer, and whether it ended with its last event."""
    timer = StreamTimer()
    ended = False
    try:
        for line in lines(url, body):
            if line == "data: [DONE]":
                ended = True
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("finished") is True and "error" not in event:
                ended = True
            if pick(event):
                timer.token()
    except (OSError, httpx.HTTPError):
        ended = False
    return timer, ended


class Server:
    """One way to generate: `stream(prompt, ignore_eos)` -> (timer, ended)."""

    def __init__(self, name: str, stream: Callable[[str, bool], Timed]) -> None:
        self.name = name
        self.stream = stream
        self.lock: threading.Lock | None = None  # serves one request at a time

    def one(self, prompt: str, ignore_eos: bool = False) -> Timed:
        if self.lock is None:
            return self.stream(prompt, ignore_eos)
        timer = StreamTimer()  # the wait for the lock counts in the time to first token
        with self.lock:
            inner, ended = self.stream(prompt, ignore_eos)
        inner.started = timer.started
        return inner, ended


def wait_for_workers(coordinator: str, count: int, timeout: float = 60) -> None:
    """Wait until `coordinator` sees `count` healthy workers."""

    def seen() -> bool:
        listing = httpx.get(f"{coordinator}/coordinator/health/workers", timeout=5).json()
        return bool(sum(w["healthy"] for w in listing) == count)

    try:
        wait_until(seen, timeout, what=f"{count} workers at {coordinator}", interval=0.2)
    except WaitTimeout:
        raise SystemExit(
            f"{coordinator} did not see {count} workers within {timeout:g} s"
        ) from None
