"""The ASGI response that streams events to a client through a bounded buffer.

Three tasks run side by side: `pump` reads the relay's events into a bounded channel, `write`
sends them to the client as server-sent events, and `listen` waits for the client to hang
up. A client that hangs up cancels the relay at once (which cancels the worker's session);
a client so slow that the buffer overflows is dropped (its connection is closed), so it
never holds back the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from starlette.responses import Response

from ishan_tools.infer.errors import ClientTooSlow
from ishan_tools.infer.events import Event, Token
from ishan_tools.infer.metrics import RequestRecord, record_of

log = logging.getLogger(__name__)

Render = Callable[[Event], list[bytes]]


async def until_disconnected(receive: Any) -> None:
    """Return once the client has hung up (the request body must have been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        source: AsyncGenerator[Event, None],
        render: Render,
        buffer: int,
        on_close: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(status_code=200, media_type=self.media_type)
        del self.headers["content-length"]  # streamed: chunked transfer encoding
        self.headers["cache-control"] = "no-cache"
        self.headers["x-accel-buffering"] = "no"
        self.source = source
        self.render_event = render
        # One more slot than the client may lag, so the last event always fits.
        self.buffer: asyncio.Queue[Event] = asyncio.Queue(buffer + 1)
        self.lag = buffer
        self.on_close = on_close  # frees the session even if the stream never starts
        self.record: RequestRecord | None = None  # the request's metrics, when counted

    async def _pump(self) -> None:
        try:
            async for event in self.source:
                if self.buffer.qsize() >= self.lag and isinstance(event, Token):
                    raise ClientTooSlow
                self.buffer.put_nowait(event)
                if not isinstance(event, Token):
                    return
        finally:
            await self.source.aclose()

    async def _write(self, send: Any) -> None:
        buffer, render = self.buffer, self.render_event
        while True:
            batch = [await buffer.get()]
            while not buffer.empty():  # the client fell behind: send what piled up at once
                batch.append(buffer.get_nowait())
            if self.record is not None:
                for event in batch:
                    self.record.observe(event)
            body = b"".join(chunk for event in batch for chunk in render(event))
            await send({"type": "http.response.body", "body": body, "more_body": True})
            if not isinstance(batch[-1], Token):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.record = record_of(scope)
        try:
            await self._stream(receive, send)
        finally:
            await self.on_close()

    async def _stream(self, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        pump = asyncio.create_task(self._pump())
        write = asyncio.create_task(self._write(send))
        listen = asyncio.create_task(until_disconnected(receive))
        pending = {pump, write, listen}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if write in done or listen in done:
                    break
                if pump in done and pump.exception() is not None:
                    if isinstance(pump.exception(), ClientTooSlow):
                        log.warning("dropped a client that read too slowly")
                    else:
                        log.error("relay failed", exc_info=pump.exception())
                    break
        finally:
            for task in (pump, write, listen):
                task.cancel()
            for task in (pump, write, listen):
                with contextlib.suppress(BaseException):
                    await task
