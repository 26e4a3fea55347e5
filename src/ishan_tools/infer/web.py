"""The FastAPI pieces both servers share: the JSON error response, the bearer-token check,
the bounded request body (`BodyLimit`, `read_json`), and the `/metrics` page with the
middleware that counts requests.

Limits on every body (docs/reliability.md): over `max_bytes` (`COORDINATOR_BODY_BYTES` on
the coordinator, `WORKER_BODY_BYTES` on a worker, which takes what a coordinator forwards,
its non-ASCII text escaped) gets 413 before the app reads it; JSON nested deeper than
`MAX_JSON_DEPTH` gets 400. A large body is parsed in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.core import Metric

from ishan_tools.infer.errors import BadRequest
from ishan_tools.infer.metrics import CONTENT_TYPE, Metrics, MetricsMiddleware
from ishan_tools.infer.protocol import bearer_matches

MB = 1024 * 1024
COORDINATOR_BODY_BYTES = 2 * MB
WORKER_BODY_BYTES = 6 * COORDINATOR_BODY_BYTES  # JSON's \uXXXX escapes: 6 bytes for 1
MAX_JSON_DEPTH = 64  # arrays and objects inside each other, the body itself included
THREAD_PARSE_BYTES = 64 * 1024  # larger bodies are parsed off the event loop


def error_response(status: int, error: Any) -> JSONResponse:
    """`{"error": error}` with `status`: a message, or an object such as OpenAI's."""
    return JSONResponse({"error": error}, status_code=status)


def authorized(request: Request, api_key: str | None) -> bool:
    """True when no key is required or the request's bearer token is `api_key`."""
    return bearer_matches(request.headers.get("authorization"), api_key)


def add_metrics(
    app: FastAPI,
    gauges: Callable[[], Iterable[Metric]],
    endpoints: frozenset[str],
    per_model: bool = False,
) -> Metrics:
    """Count the requests to `endpoints` (by model too, with `per_model`) and serve
    `GET /metrics` (with `gauges` live)."""
    metrics = Metrics(gauges, per_model)
    app.add_middleware(MetricsMiddleware, metrics=metrics, endpoints=endpoints)

    @app.get("/metrics")
    async def metrics_page() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return metrics


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep arrays and objects nest in `value` (stops counting past `limit`)."""
    if not isinstance(value, dict | list):
        return 0
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


def parse_json(raw: bytes) -> Any:
    """The JSON document in `raw`; BadRequest when it is not JSON or nests too deep."""
    try:
        body = json.loads(raw)
    except RecursionError as exc:
        raise BadRequest(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:  # UnicodeDecodeError too
        raise BadRequest("the request body must be valid JSON") from exc
    if json_depth(body) > MAX_JSON_DEPTH:
        raise BadRequest(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
    return body


async def read_json(request: Request) -> Any:
    """The request's JSON body (raises BadRequest); a large one is parsed in a thread."""
    raw = await request.body()
    if len(raw) > THREAD_PARSE_BYTES:
        return await asyncio.to_thread(parse_json, raw)
    return parse_json(raw)


def _too_large(max_bytes: int) -> JSONResponse:
    return error_response(413, f"the request body is over the {max_bytes}-byte limit")


class BodyLimit:
    """Pure ASGI middleware: a body over `max_bytes` gets 413 before the app sees it.

    A declared `content-length` over the limit is refused at once; otherwise the body is
    read as it comes (chunked too), counted, and handed to the app whole. After the body
    the app's `receive` is the server's, so it still learns of a client that hangs up.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client hung up before its body was in
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _too_large(self.max_bytes)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
