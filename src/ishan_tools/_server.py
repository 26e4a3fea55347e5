"""The one server launcher: uvicorn on a socket bound first, so port 0 works and is reported.

The infer coordinator and workers and `ishan players serve` all start through it, on
uvloop's event loop where it is installed (`run_loop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from ishan_tools.errors import IshanError

T = TypeVar("T")
CLIENT_SEND_BUFFER = 16 * 1024  # per client connection of the coordinator (kernel: 32 KB)


def bind(
    host: str,
    port: int,
    send_buffer: int | None = None,
    *,
    option: str = "--port",
    write_timeout: float | None = None,
) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0: a free one); a clear error if taken.

    `option` is the flag the user changes to pick another port.
    `send_buffer` fixes the kernel send buffer of accepted connections (Linux doubles it),
    instead of letting it grow to megabytes: a client that stops reading is then noticed
    after about a hundred kilobytes of tokens, not millions.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP;
    # without it Nagle's algorithm holds each response's last write until the client's
    # delayed ACK, 40 ms later.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    if write_timeout and hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux only
        milliseconds = max(1, round(write_timeout * 1000))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, milliseconds)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise IshanError(
            f"cannot listen on {host}:{port} ({exc.strerror}): pick another {option}"
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"


def make_server(app: Any, graceful_timeout: int | None = None, *, access_log: bool = False) -> Any:
    """A uvicorn server for `app` that leaves SIGINT/SIGTERM handling to uvicorn's defaults;
    a line per request only with `access_log`."""
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="info" if access_log else "warning",
        access_log=access_log,
        timeout_graceful_shutdown=graceful_timeout,
        lifespan="on",
    )
    return uvicorn.Server(config)


@contextlib.contextmanager
def quiet_signals() -> Iterator[None]:
    """Python-level SIGINT/SIGTERM handlers that do nothing.

    uvicorn handles both signals while it serves and re-raises them once it has shut down;
    with these in place the re-raised signal is a no-op, so the workers still get stopped.
    """
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def serve(
    server: Any, sock: socket.socket, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve until SIGINT/SIGTERM has shut it down gracefully; `on_ready(url)` once started."""
    with quiet_signals():
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started and on_ready is not None:
            on_ready(url_of(sock))
        await task


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to the end on uvloop's event loop when it is installed (uvicorn[standard]
    brings it), else on asyncio's own.

    uvloop's loop and transports are C: the infer coordinator, which reads and writes once
    per streamed token, gave 4 to 6% more tokens/s with it on two busy cores.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def run(
    app: Any,
    host: str,
    port: int,
    *,
    on_ready: Callable[[str], None] | None = None,
    access_log: bool = False,
) -> None:
    """Bind `host:port`, serve `app` until SIGINT/SIGTERM, call `on_ready(url)` once up."""
    sock = bind(host, port)
    run_loop(serve(make_server(app, access_log=access_log), sock, on_ready))
