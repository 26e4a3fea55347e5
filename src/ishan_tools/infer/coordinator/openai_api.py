"""OpenAI-compatible endpoints on the coordinator: `/v1/models`, `/v1/completions`,
`/v1/chat/completions`, streaming (`"stream": true`, ending with `data: [DONE]`) or not.

Errors use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so the `openai`
client raises its usual exceptions. A request goes to the workers of its `model`; a model no
worker ever served is a 404 with code `model_not_found` (any name is accepted while only one
model was ever served). `/v1/models` lists the known models, each with `workers`: how many
of its workers take new sessions now. With tenants, a caller sees and may use its own
models only (any other is `model_not_found`), and a quota answers 429 with `Retry-After`
and OpenAI's `rate_limit_exceeded` (type `requests` or `tokens`), which the `openai`
client retries by itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ishan_tools.infer.coordinator.generation import (
    caller,
    json_body,
    start_stream,
    stream_response,
    unless_the_client_leaves,
)
from ishan_tools.infer.coordinator.relay import collect
from ishan_tools.infer.errors import BadRequest, RelayError, UnknownModel
from ishan_tools.infer.events import Done, Event, Failed, Token
from ishan_tools.infer.protocol import WORKER_HEADER, json_literal, sse
from ishan_tools.infer.tenants.quotas import QuotaExceeded
from ishan_tools.infer.web import error_response

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 503: "overloaded"}
ERROR_CODES = {401: "invalid_api_key"}


def unknown_model(exc: UnknownModel) -> JSONResponse:
    """OpenAI's own answer for a model it does not serve."""
    body = {
        "message": exc.message,
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    return error_response(404, body)


def openai_error(status: int, message: str) -> JSONResponse:
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    code = ERROR_CODES.get(status, status)
    return error_response(status, {"message": message, "type": kind, "param": None, "code": code})


def rate_limited(exc: QuotaExceeded) -> JSONResponse:
    """OpenAI's 429: `rate_limit_exceeded`, of type `requests` or `tokens`, with the
    seconds to wait in `Retry-After` (the `openai` client waits that long, then retries)."""
    kind = "requests" if exc.kind == "sessions" else exc.kind
    body = {"message": exc.message, "type": kind, "param": None, "code": "rate_limit_exceeded"}
    response = error_response(429, body)
    response.headers["retry-after"] = exc.retry_after_header
    return response


def _usage(done: Done) -> dict[str, int]:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
    }


def _renderer(ident: str, model: str, *, chat: bool) -> Callable[[Event], list[bytes]]:
    created = int(time.time())
    kind = "chat.completion.chunk" if chat else "text_completion"
    first = [chat]  # the first delta of a chat also names the role

    def choice(text: str | None, finish: str | None, role: bool = False) -> dict[str, Any]:
        if not chat:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        delta: dict[str, Any] = {} if text is None else {"content": text}
        if role:
            delta["role"] = "assistant"
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    base = {"id": ident, "object": kind, "created": created, "model": model}
    # A token's chunk is the same JSON each time but for the text: split it once around a
    # placeholder, then splice each token's JSON literal in.
    head, tail = sse({**base, "choices": [choice("\x00", None)]}).split(b'"\\u0000"')

    def render(event: Event) -> list[bytes]:
        if isinstance(event, Token):
            if first[0]:
                first[0] = False
                return [sse({**base, "choices": [choice(event.text, None, role=True)]})]
            return [head + json_literal(event).encode() + tail]
        if isinstance(event, Failed):
            error = {"message": event.message, "type": "server_error", "code": event.status}
            return [sse({"error": error}), sse("[DONE]")]
        last = choice(None, event.finish_reason, role=first[0])
        chunk = {**base, "choices": [last], "usage": _usage(event)}
        return [sse(chunk), sse("[DONE]")]

    return render


def add_openai_routes(app: FastAPI) -> None:
    """Mount the `/v1` endpoints on the coordinator app."""

    @app.get("/v1/models", response_model=None)
    async def models(request: Request) -> JSONResponse:
        try:
            tenant = caller(request)
        except RelayError as exc:
            return openai_error(exc.status, exc.message)
        live = request.app.state.registry.live_workers()
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "ishan", "workers": count}
            for name, count in live.items()
            if tenant is None or tenant.may_use(name)
        ]
        return JSONResponse({"object": "list", "data": data})

    async def complete(request: Request, *, chat: bool) -> Response:
        try:
            tenant = caller(request)
            body = await json_body(request)
            streaming = body.get("stream") if isinstance(body, dict) else None
            if streaming is not None and not isinstance(streaming, bool):
                raise BadRequest("'stream' must be true or false")
            stream = await start_stream(
                request, body, tenant, chat=chat, raw=None if chat else True, require_model=True
            )
        except BadRequest as exc:
            return openai_error(400, exc.message)
        except UnknownModel as exc:
            return unknown_model(exc)
        except QuotaExceeded as exc:
            return rate_limited(exc)
        except RelayError as exc:
            return openai_error(exc.status, exc.message)
        prefix = "chatcmpl" if chat else "cmpl"
        ident = f"{prefix}-{uuid.uuid4().hex[:24]}"
        model = stream.record.model  # the model that answers (its name, not an alias)
        if body.get("stream"):
            return stream_response(stream, _renderer(ident, model, chat=chat))
        try:
            text, last = await unless_the_client_leaves(request, collect(stream))
        except RelayError as exc:  # nobody reads this answer: the session is freed already
            return openai_error(exc.status, exc.message)
        if isinstance(last, Failed):
            return openai_error(last.status if last.status >= 500 else 502, last.message)
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": last.finish_reason,
            }
        else:
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": last.finish_reason,
            }
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": [choice],
                "usage": _usage(last),
            },
            headers={WORKER_HEADER: stream.record.worker_id},  # as on a stream
        )

    @app.post("/v1/completions", response_model=None)
    async def completions(request: Request) -> Response:
        return await complete(request, chat=False)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Response:
        return await complete(request, chat=True)
