"""The coordinator: the clients' entry point (coordinator API, OpenAI API) in front of workers.

It never imports llama_cpp: workers own the model. Its state (`app.state.registry`) lives
on the app built by `create_app(settings)`.

Coordinator API: `POST /coordinator/infer` (a `prompt`, sent through the model's chat
template unless `"raw": true`, with an optional `system` message) streams
`data: {"token": ..., "finished": false}` events and ends with `{"token": "", "finished":
true}` (plus `"error"` when the stream failed midway); 400 for bad fields (and, from the
worker, for a schema or grammar it cannot use), 404 for a `model` never served, 502 when
the worker failed before the first token, 503 at capacity or when no worker of the model
is live. Workers report to `POST /coordinator/heartbeat`. The chat
page is at `GET /` (public, like its assets; the API calls it makes need the key).

With a tenants file (`settings.tenants`, docs/infer/tenants.md), clients need a tenant's
key, and get 404 for a model not theirs, 400 for `max_tokens` over their cap and 429 with
`Retry-After` at a quota; heartbeats still need the cluster key (`worker_key`), never a
tenant's. `GET /coordinator/usage` shows every tenant's usage to an admin tenant. SIGHUP
reloads the file (`reload_on_hangup`). With `settings.state`, the tenants' quotas live in
Redis, shared by every coordinator using it (`shared_quotas`, docs/infer/shared-limits.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ishan_tools._server import CLIENT_SEND_BUFFER, bind, make_server, serve
from ishan_tools.infer.config import CoordinatorSettings
from ishan_tools.infer.coordinator.gauges import coordinator_gauges
from ishan_tools.infer.coordinator.generation import (
    caller,
    json_body,
    start_stream,
    stream_response,
)
from ishan_tools.infer.coordinator.openai_api import add_openai_routes
from ishan_tools.infer.coordinator.openapi import describe
from ishan_tools.infer.coordinator.page import add_page
from ishan_tools.infer.coordinator.registry import Registry, still_there
from ishan_tools.infer.errors import BadRequest, RelayError, UnknownModel, WorkerConflict
from ishan_tools.infer.events import Event, Failed, Token
from ishan_tools.infer.protocol import bearer_header, json_literal, sse
from ishan_tools.infer.tenants.gate import Gate
from ishan_tools.infer.tenants.metrics import tenant_metrics
from ishan_tools.infer.tenants.quotas import QuotaExceeded, Quotas
from ishan_tools.infer.web import (
    COORDINATOR_BODY_BYTES,
    BodyLimit,
    add_metrics,
    authorized,
    error_response,
)

if TYPE_CHECKING:
    from ishan_tools.infer.tenants.shared import RedisQuotas

log = logging.getLogger(__name__)
GENERATION_ENDPOINTS = frozenset({"/coordinator/infer", "/v1/completions", "/v1/chat/completions"})


def coordinator_render(event: Event) -> list[bytes]:
    """The coordinator API's SSE format."""
    if isinstance(event, Token):
        return [f'data: {{"token": {json_literal(event)}, "finished": false}}\n\n'.encode()]
    if isinstance(event, Failed):
        return [sse({"token": "", "finished": True, "error": event.message})]
    return [sse({"token": "", "finished": True})]


def relay_error(exc: RelayError) -> JSONResponse:
    """The coordinator API's answer for a request that cannot be served."""
    response = error_response(exc.status, exc.message)
    if isinstance(exc, QuotaExceeded):
        response.headers["retry-after"] = exc.retry_after_header
    return response


def create_app(settings: CoordinatorSettings, quotas: Quotas | None = None) -> FastAPI:
    """The coordinator app; workers join by sending heartbeats. With `settings.tenants`,
    the tenants' quotas live in `quotas` (default: this process's own)."""

    app = FastAPI(title="ishan infer coordinator")
    app.state.registry = Registry(settings)
    app.state.gate = Gate(settings.tenants, quotas) if settings.tenants is not None else None
    add_metrics(
        app,
        lambda: [*coordinator_gauges(app.state.registry), *tenant_metrics(app.state.gate)],
        GENERATION_ENDPOINTS,
        per_model=True,
    )
    app.add_middleware(BodyLimit, max_bytes=COORDINATOR_BODY_BYTES)

    cluster_key = settings.worker_key

    @app.post("/coordinator/heartbeat", response_model=None)
    async def heartbeat(request: Request) -> JSONResponse:
        if not authorized(request, cluster_key):
            return error_response(401, "missing or wrong API key")
        registry: Registry = request.app.state.registry
        try:
            body = await json_body(request)
            try:
                record = registry.heartbeat(body)
            except WorkerConflict as exc:  # believed only when the known worker is gone
                if await still_there(exc.url, exc.boot_id, bearer_header(cluster_key)):
                    return error_response(409, exc.message)
                record = registry.heartbeat(body, replace=True)
        except BadRequest as exc:
            return error_response(400, exc.message)
        return JSONResponse({"ok": True, "worker_id": record.worker_id})

    @app.post("/coordinator/infer", response_model=None)
    async def infer(request: Request) -> Response:
        tenant = None
        try:
            tenant = caller(request)
            body = await json_body(request)
            stream = await start_stream(request, body, tenant, require_model=True)
        except BadRequest as exc:
            return error_response(400, exc.message)
        except UnknownModel as exc:
            known = request.app.state.registry.known_models()
            served = ", ".join(m for m in known if tenant is None or tenant.may_use(m))
            return error_response(404, f"{exc.message} (served: {served})")
        except RelayError as exc:
            return relay_error(exc)
        return stream_response(stream, coordinator_render)

    @app.get("/coordinator/usage", response_model=None)
    async def usage(request: Request) -> JSONResponse:
        gate: Gate | None = request.app.state.gate
        if gate is None:
            return error_response(404, "no tenants: start the coordinator with --tenants PATH")
        try:
            tenant = caller(request)
        except RelayError as exc:
            return relay_error(exc)
        if tenant is None or not tenant.admin:
            return error_response(403, "only an admin tenant's key may read the usage")
        return JSONResponse(await gate.report())

    @app.get("/coordinator/health")
    async def health(request: Request) -> dict[str, Any]:
        registry: Registry = request.app.state.registry
        workers = registry.describe()
        return {
            "status": "ok",
            "workers": len(workers),
            "healthy_workers": sum(1 for w in workers if w["healthy"]),
            "sessions": registry.total_sessions,
            "kv_used_bytes": registry.total_kv_bytes,
            "limits": dataclasses.asdict(settings.limits),
        }

    @app.get("/coordinator/health/workers")
    async def health_workers(request: Request) -> list[dict[str, Any]]:
        workers: list[dict[str, Any]] = request.app.state.registry.describe()
        return workers

    add_openai_routes(app)
    add_page(app)
    describe(app)
    return app


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_exposed(settings: CoordinatorSettings) -> None:
    """One log line when a coordinator without a key listens beyond loopback."""
    if settings.worker_key is None and not is_loopback(settings.host):
        log.warning(
            "warning: the coordinator listens on %s without --api-key: anyone who can reach "
            "it may generate, and register workers that receive its traffic (docs/"
            "reliability.md)",
            settings.host,
        )
    elif settings.api_key is None and not is_loopback(settings.host):
        log.warning(
            "warning: the coordinator listens on %s without --api-key: anyone who can reach "
            "it may generate (its workers are keyed; docs/reliability.md)",
            settings.host,
        )


def reload_on_hangup(app: FastAPI) -> None:
    """SIGHUP reloads the app's tenants file (when it has one) without dropping a stream."""
    gate: Gate | None = app.state.gate
    if gate is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, gate.reload)


def shared_quotas(settings: CoordinatorSettings) -> RedisQuotas | None:
    """The tenants' quotas in Redis with `settings.state` (redis is imported only then),
    to `start` once the app is built and `close` on shutdown; None without."""
    if settings.state is None:
        return None
    from ishan_tools.infer.tenants.shared import RedisQuotas

    return RedisQuotas(settings.state, settings.state_lease)


async def run_coordinator(
    settings: CoordinatorSettings, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve the coordinator until SIGINT/SIGTERM; `on_ready(url)` once it listens."""
    quotas = shared_quotas(settings)
    app = create_app(settings, quotas)
    sock = bind(settings.host, settings.port, CLIENT_SEND_BUFFER)
    warn_if_exposed(settings)
    reload_on_hangup(app)
    if quotas is not None:
        await quotas.start()
    try:
        await serve(make_server(app), sock, on_ready)
    finally:
        if quotas is not None:
            await quotas.close()
