"""Request handling shared by the coordinator's seed API and its OpenAI API."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from prometheus_client.core import GaugeMetricFamily, Metric

from ishan_tools.breaker import CircuitState
from ishan_tools.infer.config import CoordinatorSettings
from ishan_tools.infer.coordinator.registry import Registry
from ishan_tools.infer.coordinator.relay import Stream, events, open_stream
from ishan_tools.infer.coordinator.sse import EventStreamResponse, Render
from ishan_tools.infer.errors import BadRequest
from ishan_tools.infer.metrics import gauge
from ishan_tools.infer.protocol import bearer_matches, parse_request


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


def coordinator_gauges(registry: Registry) -> list[Metric]:
    """Sessions, KV and every worker's health and breaker state, read at each scrape."""
    workers = registry.describe()
    per_worker = {
        "healthy": ("ishan_infer_worker_healthy", "1 when the worker takes new sessions."),
        "sessions": ("ishan_infer_worker_sessions", "Sessions open on the worker."),
        "kv_used_bytes": ("ishan_infer_worker_kv_used_bytes", "KV reserved on the worker."),
        "kv_capacity_bytes": ("ishan_infer_worker_kv_capacity_bytes", "Worker KV capacity."),
    }
    families: list[Metric] = [
        gauge("ishan_infer_sessions_active", "Sessions open now.", registry.total_sessions),
        gauge(
            "ishan_infer_kv_used_bytes", "KV reserved by open sessions.", registry.total_kv_bytes
        ),
        gauge(
            "ishan_infer_kv_capacity_bytes",
            "KV capacity of the healthy workers.",
            sum(w["kv_capacity_bytes"] for w in workers if w["healthy"]),
        ),
    ]
    for key, (name, doc) in per_worker.items():
        family = GaugeMetricFamily(name, doc, labels=["worker"])
        for w in workers:
            family.add_metric([w["worker_id"]], float(w[key]))
        families.append(family)
    breaker = GaugeMetricFamily(
        "ishan_infer_worker_breaker_state",
        "1 for the circuit breaker's current state of each worker.",
        labels=["worker", "state"],
    )
    for w in workers:
        for state in CircuitState:
            breaker.add_metric([w["worker_id"], state.value], float(w["breaker"] == state.value))
    families.append(breaker)
    return families
