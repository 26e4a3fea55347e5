"""Request handling shared by the coordinator's seed API and its OpenAI API."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ishan_tools.infer.config import CoordinatorSettings
from ishan_tools.infer.protocol import BadRequest, bearer_matches, parse_request
from ishan_tools.infer.registry import Registry
from ishan_tools.infer.relay import Stream, events, open_stream
from ishan_tools.infer.sse import EventStreamResponse, Render


def authorized(request: Request, settings: CoordinatorSettings) -> bool:
    return bearer_matches(request.headers.get("authorization"), settings.api_key)


async def json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise BadRequest("the request body must be valid JSON") from exc


async def start(request: Request, body: Any, **parse: Any) -> Stream:
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
    return EventStreamResponse(
        events(stream), render, stream.registry.settings.client_buffer, on_close=stream.close
    )
