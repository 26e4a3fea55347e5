"""A generation request on the coordinator, from body to response.

What the coordinator API and the OpenAI API do alike: read the JSON body, validate it and
open a stream on a worker (`start_stream`), then answer with the bounded SSE response
(`stream_response`), rendered in the endpoint's own format.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import Request

from ishan_tools.infer.coordinator.registry import Registry
from ishan_tools.infer.coordinator.relay import Stream, events, open_stream
from ishan_tools.infer.coordinator.sse import EventStreamResponse, Render, until_disconnected
from ishan_tools.infer.errors import RelayError
from ishan_tools.infer.metrics import record_of
from ishan_tools.infer.protocol import KV_HEADER, WORKER_HEADER, parse_request
from ishan_tools.infer.web import read_json

T = TypeVar("T")


async def json_body(request: Request) -> Any:
    """The body's JSON, parsed off the event loop when large (raises BadRequest)."""
    return await read_json(request)


async def start_stream(request: Request, body: Any, **parse: Any) -> Stream:
    """Validate `body` and open a stream on a worker of its model (raises BadRequest, or
    RelayError: UnknownModel for a model never served, 503 for one with no live worker)."""
    registry: Registry = request.app.state.registry
    name = body.get("model") if isinstance(body, dict) else None
    model = registry.model_for(name) if isinstance(name, str) and name else None
    record = record_of(request.scope)
    if record is not None:
        record.model = model  # a known model (None: unknown, or no worker reported yet)
    gen = parse_request(
        body,
        default_max_tokens=registry.settings.max_tokens_default,
        n_ctx=registry.live_n_ctx(model),
        **parse,
    )
    opening = open_stream(registry, gen, model)
    stream = await unless_the_client_leaves(
        request, opening, gone="the client went away before the first token"
    )
    if record is not None:
        record.model = stream.record.model
    return stream


async def unless_the_client_leaves(
    request: Request, work: Awaitable[T], *, gone: str = "the client went away"
) -> T:
    """Await `work`, or give it up the moment the client hangs up (raises RelayError 499
    with `gone`).

    A session may wait long for its first token (a long prompt, or queued behind the
    worker's slots), and a non-streaming answer is collected with nothing sent, so only
    `receive` tells: a client that leaves meanwhile must free the session then. Cancelling
    the opening closes the worker connection, which cancels the session there; work that
    finished (or failed) first is returned (a stream notices a later hang-up itself).
    """
    task = asyncio.ensure_future(work)
    left = asyncio.ensure_future(until_disconnected(request.receive))
    try:
        await asyncio.wait({task, left}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        left.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    if task.cancelled():
        record = record_of(request.scope)
        if record is not None:
            record.outcome = "client-disconnect"
        raise RelayError(499, gone)
    return task.result()


def stream_response(stream: Stream, render: Render) -> EventStreamResponse:
    """The streamed answer; its headers name the worker and the KV cache the session holds."""
    response = EventStreamResponse(
        events(stream), render, stream.registry.settings.client_buffer, on_close=stream.close
    )
    response.headers[WORKER_HEADER] = stream.record.worker_id
    response.headers[KV_HEADER] = str(stream.kv_bytes)
    return response
