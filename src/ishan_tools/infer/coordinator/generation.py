"""A generation request on the coordinator, from body to response.

What the coordinator API and the OpenAI API do alike: read the JSON body, validate it and
open a stream on a worker (`start_stream`), then answer with the bounded SSE response
(`stream_response`), rendered in the endpoint's own format.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ishan_tools.infer.coordinator.registry import Registry
from ishan_tools.infer.coordinator.relay import Stream, events, open_stream
from ishan_tools.infer.coordinator.sse import EventStreamResponse, Render
from ishan_tools.infer.errors import BadRequest
from ishan_tools.infer.protocol import KV_HEADER, WORKER_HEADER, parse_request


async def json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise BadRequest("the request body must be valid JSON") from exc


async def start_stream(request: Request, body: Any, **parse: Any) -> Stream:
    """Validate `body` and open a stream on a worker (raises BadRequest or RelayError)."""
    registry: Registry = request.app.state.registry
    gen = parse_request(
        body,
        default_max_tokens=registry.settings.max_tokens_default,
        n_ctx=registry.live_n_ctx(),
        **parse,
    )
    return await open_stream(registry, gen)


def stream_response(stream: Stream, render: Render) -> EventStreamResponse:
    """The streamed answer; its headers name the worker and the KV cache the session holds."""
    response = EventStreamResponse(
        events(stream), render, stream.registry.settings.client_buffer, on_close=stream.close
    )
    response.headers[WORKER_HEADER] = stream.record.worker_id
    response.headers[KV_HEADER] = str(stream.kv_bytes)
    return response
