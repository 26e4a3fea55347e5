"""Prometheus metrics for the coordinator and the workers (`GET /metrics`).

Each app owns one `Metrics` with its own `CollectorRegistry` (no module globals, so several
apps in one process never mix their figures). `MetricsMiddleware` counts every request to
the generation endpoints by outcome: the HTTP status, or `client-disconnect` when the client
hung up before the end (`client-dropped` when the server dropped a client that read too
slowly); a stream that fails after its 200 header counts under the failure's status. The
streaming code passes each event it sends to the request's `RequestRecord` (found in the
ASGI scope under `SCOPE_KEY`): `observe` feeds the token counter and the time-to-first-token
and inter-token histograms (the gaps in batches, all of them before the stream's last
event). On the coordinator (`per_model`), a request whose model is known also counts under
it: `ishan_infer_model_requests_total{model,outcome}` and
`ishan_infer_model_tokens_generated_total{model}` (the record's `model`, set once the request
names a known model; never a name a client made up). Live state (sessions, KV bytes, worker
health, breaker state) is read from the app at scrape time by the `gauges` callable.
`web.add_metrics` mounts it all; what all three systems' exporters share lives in
`ishan_tools.observe`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import Metric

from ishan_tools.infer.events import Event, Failed, Token
from ishan_tools.observe.exporter import CONTENT_TYPE, LiveCollector, gauge, render

__all__ = ["CONTENT_TYPE", "Metrics", "MetricsMiddleware", "RequestRecord", "gauge", "record_of"]

SCOPE_KEY = "ishan.request"
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
INTER_TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The metrics of one app; `gauges` returns its live state at each scrape."""

    def __init__(self, gauges: Callable[[], Iterable[Metric]], per_model: bool = False) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ishan_infer_requests",
            "Generation requests by endpoint and outcome (HTTP status or client-disconnect).",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "ishan_infer_tokens_generated", "Tokens streamed to clients.", registry=self.registry
        )
        self.ttft = Histogram(
            "ishan_infer_time_to_first_token_seconds",
            "Time from a request's arrival to its first token.",
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.inter_token = Histogram(
            "ishan_infer_inter_token_seconds",
            "Time between two tokens of one stream.",
            buckets=INTER_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.per_model = per_model
        if per_model:
            self.model_requests = Counter(
                "ishan_infer_model_requests",
                "Generation requests by the model asked for and outcome.",
                ["model", "outcome"],
                registry=self.registry,
            )
            self.model_tokens = Counter(
                "ishan_infer_model_tokens_generated",
                "Tokens streamed to clients, by model.",
                ["model"],
                registry=self.registry,
            )
        self.registry.register(LiveCollector(gauges))

    def render(self) -> bytes:
        return render(self.registry)


FLUSH_EVERY = 32  # inter-token gaps a stream keeps before it hands them to the histogram


class RequestRecord:
    """What one request's stream reports: its tokens and how it ended.

    The token counter moves with every token (rates read from it stay live). The
    inter-token histogram, dearer per update (a bucket search and two locks), gets a
    stream's gaps every `FLUSH_EVERY` tokens and at its end (`flush`).
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.start = time.monotonic()
        self.last: float | None = None
        self.outcome: str | None = None
        self.gaps: list[float] = []
        self.model: str | None = None  # the known model the request went to (coordinator)
        self.model_count = 0  # tokens not yet added to the model's counter

    def observe(self, event: Event) -> None:
        """Count `event` as it leaves this process: a token, or the failure that ends it."""
        if isinstance(event, Token):
            self.token()
            return
        self.flush()  # before the last event leaves: a client that then reads /metrics sees all
        if isinstance(event, Failed):
            self.failed(event.status)

    def token(self) -> None:
        now = time.monotonic()
        self.metrics.tokens.inc()
        self.model_count += 1
        if self.last is None:
            self.metrics.ttft.observe(now - self.start)
        else:
            self.gaps.append(now - self.last)
            if len(self.gaps) >= FLUSH_EVERY:
                self.flush()
        self.last = now

    def flush(self) -> None:
        """Hand the gaps kept so far to the inter-token histogram, and the tokens counted
        since to the model's counter."""
        if self.model is not None and self.model_count and self.metrics.per_model:
            self.metrics.model_tokens.labels(self.model).inc(self.model_count)
        self.model_count = 0
        gaps, self.gaps = self.gaps, []
        observe = self.metrics.inter_token.observe
        for gap in gaps:
            observe(gap)

    def failed(self, status: int) -> None:
        """The stream ended with an error after its 200 header."""
        self.outcome = self.outcome or str(status)


def record_of(scope: Any) -> RequestRecord | None:
    record = scope.get(SCOPE_KEY)
    return record if isinstance(record, RequestRecord) else None


class MetricsMiddleware:
    """Pure ASGI middleware: counts requests to `endpoints` by outcome."""

    def __init__(self, app: Any, metrics: Metrics, endpoints: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = endpoints

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.endpoints:
            await self.app(scope, receive, send)
            return
        record = RequestRecord(self.metrics)
        scope[SCOPE_KEY] = record
        state = {"status": 500, "finished": False, "disconnected": False}

        async def watched_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                state["status"] = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                state["finished"] = True
            await send(message)

        async def watched_receive() -> Any:
            message = await receive()
            if message["type"] == "http.disconnect" and not state["finished"]:
                state["disconnected"] = True
            return message

        try:
            await self.app(scope, watched_receive, watched_send)
        finally:
            record.flush()
            if not state["finished"]:
                outcome = "client-disconnect" if state["disconnected"] else "client-dropped"
            else:
                outcome = record.outcome or str(state["status"])
            self.metrics.requests.labels(scope["path"], outcome).inc()
            if record.model is not None and self.metrics.per_model:
                self.metrics.model_requests.labels(record.model, outcome).inc()
