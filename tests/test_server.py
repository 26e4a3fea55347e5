"""The one server launcher (`ishan_tools._server`), under a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from ishan_tools._server import bind, make_server, serve


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def accepted_option(option: int, **bind_options: Any) -> list[int]:
    """Serve one request through `bind(..., **bind_options)` and a real uvicorn, and read
    TCP `option` on every connection the server accepted."""
    seen: list[int] = []

    async def main() -> None:
        sock = bind("127.0.0.1", 0, **bind_options)
        server = make_server(_ok)
        url = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve(server, sock, url.set_result))
        address = (await url).removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(address[0], int(address[1]))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"ok")
        for connection in server.server_state.connections:
            raw = connection.transport.get_extra_info("socket")
            seen.append(raw.getsockopt(socket.IPPROTO_TCP, option))
        writer.close()
        server.should_exit = True
        await task

    asyncio.run(main())
    return seen


def test_accepted_connections_send_without_delay() -> None:
    """Every connection the launcher accepts has TCP_NODELAY, so a response's last small write
    goes out at once instead of waiting ~40 ms for the client's delayed ACK."""
    seen = accepted_option(socket.TCP_NODELAY)
    assert seen and all(seen), seen


def test_a_write_timeout_reaches_every_accepted_connection() -> None:
    """`bind(write_timeout=...)` sets TCP_USER_TIMEOUT on the listening socket, and every
    connection it accepts carries it: the kernel drops one whose peer stops acknowledging
    (cut off by the network) after that long, instead of retransmitting for ~15 minutes."""
    assert accepted_option(socket.TCP_USER_TIMEOUT, write_timeout=2.5) == [2500]
    assert accepted_option(socket.TCP_USER_TIMEOUT) == [0]  # no bound: the kernel's own
