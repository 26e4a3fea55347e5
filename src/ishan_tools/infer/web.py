"""The FastAPI pieces both servers share: the JSON error response, the bearer-token check,
and the `/metrics` page with the middleware that counts requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.core import Metric

from ishan_tools.infer.metrics import CONTENT_TYPE, Metrics, MetricsMiddleware
from ishan_tools.infer.protocol import bearer_matches


def error_response(status: int, error: Any) -> JSONResponse:
    """`{"error": error}` with `status`: a message, or an object such as OpenAI's."""
    return JSONResponse({"error": error}, status_code=status)


def authorized(request: Request, api_key: str | None) -> bool:
    """True when no key is required or the request's bearer token is `api_key`."""
    return bearer_matches(request.headers.get("authorization"), api_key)


def add_metrics(
    app: FastAPI, gauges: Callable[[], Iterable[Metric]], endpoints: frozenset[str]
) -> Metrics:
    """Count the requests to `endpoints` and serve `GET /metrics` (with `gauges` live)."""
    metrics = Metrics(gauges)
    app.add_middleware(MetricsMiddleware, metrics=metrics, endpoints=endpoints)

    @app.get("/metrics")
    async def metrics_page() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return metrics
