"""A generation request on the coordinator, from body to response.

What the coordinator API and the OpenAI API do alike: know the caller (`caller`: the
shared key, or a tenant's), read the JSON body, validate it against the tenant's limits and
open a stream on a worker (`start_stream`), then answer with the bounded SSE response
(`stream_response`), rendered in the endpoint's own format. A tenant's request takes one of
its sessions before it is routed (`Gate.admit`) and carries the tenant to the worker, whose
wait queue and prefix cache go by it; the stream gives the session back when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import Request

from ishan_tools.infer.coordinator.registry import Registry
from ishan_tools.infer.coordinator.relay import Stream, events, open_stream
from ishan_tools.infer.coordinator.sse import EventStreamResponse, Render, until_disconnected
from ishan_tools.infer.errors import RelayError
from ishan_tools.infer.metrics import record_of
from ishan_tools.infer.protocol import KV_HEADER, WORKER_HEADER, parse_request
from ishan_tools.infer.tenants.book import Tenant
from ishan_tools.infer.tenants.gate import Gate, Ticket, Unauthorized
from ishan_tools.infer.web import authorized, read_json

T = TypeVar("T")


async def json_body(request: Request) -> Any:
    """The body's JSON, parsed off the event loop when large (raises BadRequest)."""
    return await read_json(request)


def caller(request: Request) -> Tenant | None:
    """The tenant whose key the request carries (None: no tenants, the shared key matched);
    raises Unauthorized (401)."""
    gate: Gate | None = request.app.state.gate
    if gate is None:
        if not authorized(request, request.app.state.registry.settings.api_key):
            raise Unauthorized()
        return None
    return gate.identify(request.headers.get("authorization"))


async def start_stream(
    request: Request, body: Any, tenant: Tenant | None = None, **parse: Any
) -> Stream:
    """Validate `body` and open a stream on a worker of its model (raises BadRequest, or
    RelayError: UnknownModel for a model never served or not the tenant's, QuotaExceeded
    for a tenant at a limit, 503 for a model with no live worker)."""
    registry: Registry = request.app.state.registry
    gate: Gate | None = request.app.state.gate
    name = body.get("model") if isinstance(body, dict) else None
    model = registry.model_for(name) if isinstance(name, str) and name else None
    if tenant is not None and gate is not None:
        gate.usage_of(tenant).requests += 1
        gate.check_model(tenant, name if isinstance(name, str) else None, model)
    record = record_of(request.scope)
    if record is not None:
        record.model = model  # a known model (None: unknown, or no worker reported yet)
    default_max_tokens = registry.settings.max_tokens_default
    if tenant is not None and tenant.max_tokens is not None:
        default_max_tokens = min(default_max_tokens, tenant.max_tokens)
    gen = parse_request(
        body, default_max_tokens=default_max_tokens, n_ctx=registry.live_n_ctx(model), **parse
    )
    ticket: Ticket | None = None
    if tenant is not None and gate is not None:
        gate.check_max_tokens(tenant, gen.max_tokens)
        ticket = await gate.admit(tenant)
        gen = dataclasses.replace(
            gen, tenant=tenant.name, weight=tenant.weight, cache_group=tenant.group
        )
    try:
        stream = await unless_the_client_leaves(
            request,
            open_stream(registry, gen, model),
            gone="the client went away before the first token",
        )
    except BaseException:
        if ticket is not None:
            await ticket.close()
        raise
    stream.ticket = ticket
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
