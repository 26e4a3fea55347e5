"""Route one request to a worker and relay its tokens to the client, surviving failures.

`open_stream` reserves a worker picked by the scheduler (at the full-context KV upper bound;
the owner of the request's leading text among the candidates is preferred, see `affinity`),
posts the request and waits for the first token, then corrects that reservation down to the
session's real need (the worker's `x-ishan-kv-bytes` header) and takes the worker's own
count of its load from the answer's headers (other coordinators' sessions included). A
worker that is unreachable, errs (5xx) or stays silent past the first-token timeout is
recorded on its circuit breaker and the request is retried on another worker, since nothing
has reached the client yet. So is a session the worker only queued behind its busy slots
(another coordinator filled them a moment before) while another worker has a free one.
After the first token, `events` yields the rest; a worker that dies mid-stream, or a
session idle past its TTL, ends it with a `Failed`. Only the workers of the request's model
are candidates, so a leading text's owner is one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ishan_tools.breaker import CircuitBreaker, CircuitBreakerOpenError
from ishan_tools.infer.config import GenerationRequest
from ishan_tools.infer.coordinator.affinity import leading_text, owner, prefix_keys
from ishan_tools.infer.coordinator.registry import Registry, WorkerRecord
from ishan_tools.infer.coordinator.scheduler import pick, slot_free
from ishan_tools.infer.coordinator.worker_stream import WorkerStream
from ishan_tools.infer.errors import RelayError, WorkerFailed, WorkerRefused
from ishan_tools.infer.events import Done, Event, Failed, Token
from ishan_tools.infer.protocol import (
    CACHE_GROUP_HEADER,
    KV_HEADER,
    QUEUED_HEADER,
    TENANT_HEADER,
    WEIGHT_HEADER,
    bearer_header,
    decode_event,
)

if TYPE_CHECKING:
    from ishan_tools.infer.tenants.gate import Ticket

CONNECT_TIMEOUT = 5.0


def record_failure(breaker: CircuitBreaker, exc: Exception) -> None:
    """Count a failure seen outside `breaker.call` (a worker dying mid-stream)."""
    with contextlib.suppress(Exception), breaker:
        raise exc


@dataclass
class Stream:
    """An open generation on one worker whose first event has arrived."""

    registry: Registry
    record: WorkerRecord
    kv_bytes: int
    first: Event
    worker: WorkerStream
    closed: bool = False
    ticket: Ticket | None = None  # a tenant's session, given back (and charged) at the end

    async def close(self) -> None:
        """Free the session's reservation and its worker connection (once)."""
        if not self.closed:
            self.closed = True
            self.registry.release(self.record, self.kv_bytes)
            try:
                await self.worker.aclose()
            finally:
                if self.ticket is not None:
                    await self.ticket.close()


def worker_headers(key: str | None, request: GenerationRequest) -> dict[str, str]:
    """The cluster key and, for a tenant's request, whose it is (the worker's fair queue
    and prefix cache go by them)."""
    headers = bearer_header(key)
    if request.tenant is not None:
        headers[TENANT_HEADER] = request.tenant
        headers[WEIGHT_HEADER] = repr(request.weight)
        if request.cache_group is not None:
            headers[CACHE_GROUP_HEADER] = request.cache_group
    return headers


async def _first_event(worker: WorkerStream, worker_id: str) -> Event:
    """The worker's answer up to its first event; raises WorkerFailed or WorkerRefused."""
    if worker.status != 200:
        text = await worker.read_all()
        try:
            message = str(json.loads(text).get("error", text))
        except (ValueError, AttributeError):
            message = text[:200]
        if worker.status >= 500 and worker.status != 503:
            raise WorkerFailed(f"worker {worker_id} failed: {message}")
        raise WorkerRefused(worker.status, message)
    line = ""
    while not line:
        next_line = await worker.readline()
        if next_line is None:
            raise WorkerFailed(f"worker {worker_id} closed the stream before its first token")
        line = next_line
    first = decode_event(line)
    if isinstance(first, Failed):
        if 400 <= first.status < 500:
            raise WorkerRefused(first.status, first.message)
        raise WorkerFailed(f"worker {worker_id} failed: {first.message}")
    return first


def _real_kv(worker: WorkerStream, held: int) -> int:
    """The worker's own KV figure for the session (never above what we hold for it)."""
    try:
        real = int(worker.headers.get(KV_HEADER, held))
    except ValueError:
        return held
    return min(max(real, 0), held)


def _waits_for_a_slot(worker: WorkerStream) -> bool:
    """Whether the worker queued the session behind its busy slots (its answer says so)."""
    return worker.status == 200 and worker.headers.get(QUEUED_HEADER) == "1"


async def _start(
    registry: Registry,
    record: WorkerRecord,
    request: GenerationRequest,
    held: int,
    free_slot_elsewhere: Callable[[], bool],
) -> Stream:
    """Open the session on `record` and wait for its first event. A session the worker
    queued behind busy slots (another coordinator filled them a moment ago) is withdrawn at
    once, refused as 503, when a worker not tried yet has a free slot."""
    settings = registry.settings
    headers = worker_headers(settings.worker_key, request)
    url = f"{record.url}/worker/generate"
    try:
        async with asyncio.timeout(settings.first_token_timeout):
            worker = await WorkerStream.post(url, request.to_json(), headers, CONNECT_TIMEOUT)
            try:
                if _waits_for_a_slot(worker) and free_slot_elsewhere():
                    raise WorkerRefused(503, f"worker {record.worker_id} has no free slot")
                first = await _first_event(worker, record.worker_id)
            except BaseException:
                await worker.aclose()
                raise
    except TimeoutError as exc:
        raise WorkerFailed(
            f"worker {record.worker_id} sent no token within {settings.first_token_timeout:g} s"
        ) from exc
    except OSError as exc:
        raise WorkerFailed(f"worker {record.worker_id} unreachable: {exc!r}") from exc
    kv_bytes = registry.correct(record, held, _real_kv(worker, held))
    registry.report(record, worker.headers)
    return Stream(registry, record, kv_bytes, first, worker)


async def open_stream(
    registry: Registry, request: GenerationRequest, model: str | None = None
) -> Stream:
    """Start `request` on the best worker of `model` (None: any), retrying elsewhere until
    a first token arrives."""
    if registry.at_capacity():
        raise RelayError(503, "the system is at capacity: retry later")
    tried: set[str] = set()
    failures: list[str] = []
    keys = prefix_keys(leading_text(request), request.cache_group)
    margin = registry.settings.routing_margin
    of_model = f" of model '{model}'" if model is not None else ""
    first_owner: str | None = None  # of the leading text, among the model's workers

    def free_slot_elsewhere() -> bool:
        return any(c.has_room and slot_free(c) for c in registry.candidates(tried, model))

    while True:
        candidates = registry.candidates(tried, model)
        preferred = owner(keys, (c.worker_id for c in candidates))
        first_owner = first_owner if tried else preferred
        choice = pick(candidates, preferred, margin)
        if choice is None:
            if failures:
                raise RelayError(502, "; ".join(failures))
            if not registry.candidates(set(), model):
                raise RelayError(503, f"no healthy worker{of_model} is available: retry later")
            raise RelayError(503, f"all workers{of_model} are at capacity: retry later")
        record = registry.workers[choice.worker_id]
        tried.add(record.worker_id)
        kv_bytes = registry.reserve(record)
        try:
            stream = await record.breaker.call_async(
                _start, registry, record, request, kv_bytes, free_slot_elsewhere
            )
        except WorkerRefused as exc:
            registry.release(record, kv_bytes)
            if exc.status != 503:
                raise RelayError(exc.status, exc.message) from exc
        except CircuitBreakerOpenError:
            registry.release(record, kv_bytes)
        except WorkerFailed as exc:
            registry.release(record, kv_bytes)
            failures.append(exc.message)
        except BaseException:
            registry.release(record, kv_bytes)
            raise
        else:
            if first_owner is not None:
                followed = record.worker_id == first_owner
                registry.affinity.routed["followed" if followed else "overridden"] += 1
            return stream


async def events(stream: Stream) -> AsyncGenerator[Event, None]:
    """The stream's events from the first to the last (`Done` or `Failed`), then cleanup."""
    record, ttl = stream.record, stream.registry.settings.session_ttl
    ticket = stream.ticket
    try:
        if ticket is not None:
            ticket.observe(stream.first)
        yield stream.first
        if not isinstance(stream.first, Token):
            return
        stream.worker.expire_after(ttl)
        while True:
            try:
                line = await stream.worker.readline()
                if line is None:
                    raise ConnectionResetError("connection closed before the last event")
            except TimeoutError:
                yield Failed(f"session expired: no token for {ttl:g} s", 504)
                return
            except OSError as exc:
                failure = WorkerFailed(f"worker {record.worker_id} failed mid-stream: {exc!r}")
                record_failure(record.breaker, failure)
                yield Failed(failure.message, 502)
                return
            if not line:
                continue
            event = decode_event(line)
            if ticket is not None:
                ticket.observe(event)
            yield event
            if isinstance(event, Done | Failed):
                return
    finally:
        await stream.close()


async def collect(stream: Stream) -> tuple[str, Done | Failed]:
    """The whole text and the last event (for non-streaming requests); cancelled (the
    client hung up), it closes the stream, which frees the worker's session at once."""
    parts: list[str] = []
    source = events(stream)
    try:
        async for event in source:
            if isinstance(event, Token):
                parts.append(event.text)
            else:
                return "".join(parts), event
    finally:
        await source.aclose()
    return "".join(parts), Failed("the stream ended without a last event", 502)
