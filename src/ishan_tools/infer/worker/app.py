"""The worker: an HTTP front for one `Engine`, reporting its load to its coordinators.

`POST /worker/generate` streams NDJSON events (see `protocol`); a client that disconnects
cancels its session at once, whether its stream has started or not. The body is bounded
(`web.BodyLimit`), and the prompt is tokenized (and its grammar checked) in a thread, so
the event loop keeps serving heartbeats and other streams meanwhile. The response's
`x-ishan-kv-bytes` header carries the KV cache the session reserved (prompt plus
`max_tokens`), so the coordinator can correct its own full-context reservation; two more
carry the worker's whole load (sessions, KV used), so every coordinator sharing it keeps an
up-to-date view, and `x-ishan-queued` says whether the session waits for a busy slot.
A coordinator with tenants names the session's tenant, its weight and its cache group in
request headers (`protocol.TENANT_HEADER` and the next two), which the engine's wait queue
and prefix cache go by; without them the session is untenanted, as before tenants.
`GET /worker/health` reports the engine's sessions and KV usage. For each coordinator URL,
a background task posts a heartbeat every interval, and soon after each session starts or
ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client.core import CounterMetricFamily, Metric

from ishan_tools._server import bind, make_server, serve, url_of
from ishan_tools.infer.config import GenerationRequest, WorkerSettings, model_name_of
from ishan_tools.infer.errors import BadRequest, EngineBusy, PromptRejected
from ishan_tools.infer.events import Token
from ishan_tools.infer.metrics import gauge, record_of
from ishan_tools.infer.protocol import (
    CACHE_GROUP_HEADER,
    KV_HEADER,
    KV_USED_HEADER,
    QUEUED_HEADER,
    SESSIONS_HEADER,
    TENANT_HEADER,
    WEIGHT_HEADER,
    WEIGHTS,
    bearer_header,
    encode_event,
    parse_request,
)
from ishan_tools.infer.web import (
    WORKER_BODY_BYTES,
    BodyLimit,
    add_metrics,
    authorized,
    error_response,
    read_json,
)
from ishan_tools.infer.worker.engine import Engine
from ishan_tools.infer.worker.session import Session


def model_name(settings: WorkerSettings) -> str:
    """The name clients send for this worker's model: --model-name, or the file's stem."""
    return settings.model_name or model_name_of(settings.engine.model.path)


def heartbeat_payload(
    settings: WorkerSettings, engine: Engine, url: str | None = None
) -> dict[str, Any]:
    stats = engine.stats()
    return {
        "worker_id": settings.worker_id,
        "url": url or settings.worker_url,
        "model": model_name(settings),
        "model_file": engine.shape.name,
        "n_ctx": engine.shape.n_ctx,
        "sessions": stats.sessions,
        "max_sessions": stats.max_sessions,
        "kv_used_bytes": stats.kv_used_bytes,
        "kv_capacity_bytes": stats.kv_capacity_bytes,
        "session_kv_bytes": engine.shape.session_kv_bytes,
        "heartbeat_interval": settings.heartbeat_interval,
        "slots": stats.slots,
        "boot_id": engine.boot_id,
    }


LOAD_BEAT_DELAY = 0.05  # seconds: load changes this close together make one early heartbeat
UNREACHED_SHARE = 0.25  # of the interval: how soon a heartbeat that failed is tried again


async def heartbeat_loop(
    settings: WorkerSettings,
    engine: Engine,
    coordinator: str,
    url: str | None,
    load_changed: asyncio.Event,
) -> None:
    """Tell one coordinator we are alive, and how loaded, every interval, and soon after
    each change of load (a session started or ended, `load_changed` set), so every
    coordinator sees what the others route between heartbeats; never gives up. A heartbeat
    that did not get through is tried again after a quarter of the interval, so a
    coordinator that comes back sees this worker well within one interval. Each
    coordinator has its own loop (and its own timeout of one interval, at least 1 s), so one
    that is down or slow delays no heartbeat to the others."""
    import httpx

    target = coordinator.rstrip("/") + "/coordinator/heartbeat"
    headers = bearer_header(settings.api_key)
    interval = settings.heartbeat_interval
    async with httpx.AsyncClient(timeout=max(1.0, interval)) as client:
        while True:
            load_changed.clear()  # a change from here on makes the next early heartbeat
            wait = interval * UNREACHED_SHARE
            with contextlib.suppress(httpx.HTTPError):
                payload = heartbeat_payload(settings, engine, url)
                await client.post(target, json=payload, headers=headers)
                wait = interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(load_changed.wait(), wait)
                await asyncio.sleep(LOAD_BEAT_DELAY)


def worker_gauges(engine: Engine) -> list[Metric]:
    """The engine's live state, read at each scrape."""
    stats = engine.stats()
    done = CounterMetricFamily(
        "ishan_infer_sessions_ended", "Sessions ended, by outcome.", labels=["outcome"]
    )
    for outcome in ("completed", "cancelled", "failed"):
        done.add_metric([outcome], getattr(stats, outcome))
    cache = [
        CounterMetricFamily(
            "ishan_infer_prefix_cache_hits",
            "Sessions that copied a cached prefix instead of prefilling it.",
            value=stats.prefix_cache_hits,
        ),
        CounterMetricFamily(
            "ishan_infer_prefix_cache_reused_tokens",
            "Prompt tokens copied from the KV cache instead of prefilled.",
            value=stats.prefix_cache_reused_tokens,
        ),
        CounterMetricFamily(
            "ishan_infer_draft_tokens",
            "Tokens drafted from a session's own text and checked in the batch.",
            value=stats.draft_tokens,
        ),
        CounterMetricFamily(
            "ishan_infer_draft_kept_tokens",
            "Drafted tokens the sampler agreed with: tokens out without a step of their own.",
            value=stats.draft_kept_tokens,
        ),
        CounterMetricFamily(
            "ishan_infer_prefix_cache_evictions",
            "Finished sequences dropped from the prefix cache.",
            value=stats.prefix_cache_evictions,
        ),
        gauge(
            "ishan_infer_prefix_cache_entries",
            "Finished sequences kept as prefix cache.",
            stats.prefix_cache_entries,
        ),
        gauge(
            "ishan_infer_prefix_cache_bytes",
            "KV cache cells only the prefix cache holds (freed first when needed).",
            stats.prefix_cache_bytes,
        ),
    ]
    return [
        *cache,
        gauge("ishan_infer_sessions_active", "Sessions decoding now.", stats.active),
        gauge("ishan_infer_sessions_queued", "Sessions waiting for a slot.", stats.waiting),
        gauge("ishan_infer_slots", "Sessions decoded together at most.", stats.slots),
        gauge(
            "ishan_infer_kv_used_bytes",
            "KV cache held or reserved by live sessions, shared cells once.",
            stats.kv_used_bytes,
        ),
        gauge(
            "ishan_infer_kv_cached_bytes",
            "KV cache cells filled now (live sessions and prefix cache, shared cells once).",
            stats.kv_cached_bytes,
        ),
        gauge(
            "ishan_infer_kv_capacity_bytes",
            "KV cache this worker may use.",
            stats.kv_capacity_bytes,
        ),
        done,
    ]


def with_tenant(request: GenerationRequest, headers: Mapping[str, str]) -> GenerationRequest:
    """`request` with the tenant, weight and cache group its coordinator's headers name (none:
    the defaults, as without tenants); raises `BadRequest` for a weight that is not a
    number in `WEIGHTS`."""
    weight = headers.get(WEIGHT_HEADER)
    try:
        value = 1.0 if weight is None else float(weight)
    except ValueError:
        value = math.nan
    low, high = WEIGHTS
    if not (math.isfinite(value) and low <= value <= high):
        raise BadRequest(
            f"{WEIGHT_HEADER} must be a number from {low:g} to {high:g}, got {weight!r}"
        )
    return dataclasses.replace(
        request,
        tenant=headers.get(TENANT_HEADER) or None,
        weight=value,
        cache_group=headers.get(CACHE_GROUP_HEADER) or None,
    )


async def _submit(engine: Engine, request: GenerationRequest) -> Session:
    """`engine.submit` in a thread (it tokenizes, and may check a grammar in a child);
    a session made for a request cancelled meanwhile is cancelled too."""
    task = asyncio.ensure_future(asyncio.to_thread(engine.submit, request))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(
            lambda t: None if t.cancelled() or t.exception() else engine.cancel(t.result())
        )
        raise


class SessionResponse(StreamingResponse):
    """A session's stream that ends the session however the response ends (sent, or the
    client gone, even before the first byte: the stream's own cleanup never runs then)."""

    def __init__(self, *args: Any, end: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.end = end

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.end()


def create_app(settings: WorkerSettings, engine: Engine | None = None) -> FastAPI:
    """The worker app; loads the model at startup unless an `engine` is passed in."""
    load_changed = [asyncio.Event() for _ in settings.coordinators]  # one per heartbeat loop

    def load_change() -> None:
        for changed in load_changed:
            changed.set()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine or await asyncio.to_thread(Engine.load, settings.engine)
        beats = [
            asyncio.create_task(
                heartbeat_loop(settings, app.state.engine, coordinator, url, changed)
            )
            for (coordinator, url), changed in zip(settings.coordinators, load_changed, strict=True)
        ]
        try:
            yield
        finally:
            for task in beats:
                task.cancel()
            await asyncio.to_thread(app.state.engine.close)

    app = FastAPI(title="ishan infer worker", lifespan=lifespan)
    add_metrics(app, lambda: worker_gauges(app.state.engine), frozenset({"/worker/generate"}))
    app.add_middleware(BodyLimit, max_bytes=WORKER_BODY_BYTES)

    @app.get("/worker/health")
    async def health(request: Request) -> dict[str, Any]:
        eng: Engine = request.app.state.engine
        stats = dataclasses.asdict(eng.stats())
        return {
            "status": "ok",
            "worker_id": settings.worker_id,
            "pid": os.getpid(),
            "boot_id": eng.boot_id,
            "model": model_name(settings),
            "model_file": eng.shape.name,
            "n_ctx": eng.shape.n_ctx,
            **stats,
        }

    @app.post("/worker/generate", response_model=None)
    async def generate(request: Request) -> JSONResponse | StreamingResponse:
        if not authorized(request, settings.api_key):
            return error_response(401, "missing or wrong API key")
        eng: Engine = request.app.state.engine
        try:
            gen = parse_request(await read_json(request), n_ctx=eng.shape.n_ctx)
            gen = with_tenant(gen, request.headers)
            session = await _submit(eng, gen)
            load_change()
        except BadRequest as exc:
            return error_response(400, exc.message)
        except EngineBusy as exc:
            return error_response(503, exc.message)
        except PromptRejected as exc:
            return error_response(400, exc.message)

        record = record_of(request.scope)

        async def events() -> AsyncIterator[bytes]:
            try:
                while True:
                    batch = await session.channel.aget_all()
                    if record is not None:
                        for event in batch:
                            record.observe(event)
                    yield b"".join(map(encode_event, batch))
                    if not isinstance(batch[-1], Token):
                        return
            finally:
                eng.cancel(session, "client disconnected")

        stats = eng.stats()  # this session included: every coordinator reads it
        kv = {
            KV_HEADER: str(session.prompt.kv_bytes),
            SESSIONS_HEADER: str(stats.sessions),
            KV_USED_HEADER: str(stats.kv_used_bytes),
            QUEUED_HEADER: "1" if session.ahead >= eng.slots else "0",
        }

        def end() -> None:
            eng.cancel(session, "client disconnected")  # nothing if it ended already
            load_change()

        return SessionResponse(events(), media_type="application/x-ndjson", headers=kv, end=end)

    return app


async def run_worker(
    settings: WorkerSettings, on_ready: Callable[[str], None] | None = None
) -> None:
    """Load the model, bind, then serve until SIGINT/SIGTERM; `on_ready(url)` once up."""
    sock = bind(settings.host, settings.port, write_timeout=settings.write_timeout)
    url = url_of(sock)
    settings = dataclasses.replace(
        settings, port=sock.getsockname()[1], worker_url=settings.worker_url or url
    )
    try:
        engine = await asyncio.to_thread(Engine.load, settings.engine)
    except BaseException:
        sock.close()
        raise
    server = make_server(create_app(settings, engine))
    await serve(server, sock, on_ready)
