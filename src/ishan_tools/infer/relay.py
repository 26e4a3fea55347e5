"""Route one request to a worker and relay its tokens to the client, surviving failures.

`open_stream` reserves a worker picked by the scheduler, posts the request and waits for the
first token; a worker that is unreachable, errs (5xx) or stays silent past the first-token
timeout is recorded on its circuit breaker and the request is retried on another worker,
since nothing has reached the client yet. After the first token, `events` yields the rest;
a worker that dies mid-stream, or a session idle past its TTL, ends it with a `Failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import httpx

from ishan_tools.breaker import CircuitBreaker, CircuitBreakerOpenError
from ishan_tools.errors import InferenceError
from ishan_tools.infer.channel import Done, Event, Failed, Token
from ishan_tools.infer.config import CoordinatorSettings, GenerationRequest
from ishan_tools.infer.protocol import decode_event
from ishan_tools.infer.registry import Registry, WorkerRecord, WorkerRefused
from ishan_tools.infer.scheduler import pick


class RelayError(InferenceError):
    """The request cannot be served; `status` is the HTTP status for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class WorkerFailed(InferenceError):
    """The worker was unreachable, failed (5xx) or was silent before its first token."""


def record_failure(breaker: CircuitBreaker, exc: Exception) -> None:
    """Count a failure seen outside `breaker.call` (a worker dying mid-stream)."""
    with contextlib.suppress(Exception), breaker:
        raise exc


@dataclass
class Stream:
    """An open generation on one worker whose first event has arrived."""

    record: WorkerRecord
    kv_bytes: int
    first: Event
    response: httpx.Response
    lines: AsyncIterator[str]


async def _start(
    client: httpx.AsyncClient,
    record: WorkerRecord,
    request: GenerationRequest,
    settings: CoordinatorSettings,
) -> Stream:
    headers = {"authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    timeout = httpx.Timeout(settings.first_token_timeout, connect=5.0)
    http_request = client.build_request(
        "POST",
        f"{record.url}/worker/generate",
        json=request.to_json(),
        headers=headers,
        timeout=timeout,
    )
    try:
        response = await client.send(http_request, stream=True)
    except httpx.HTTPError as exc:
        raise WorkerFailed(f"worker {record.worker_id} unreachable: {exc!r}") from exc
    try:
        if response.status_code != 200:
            await response.aread()
            try:
                message = str(response.json().get("error", response.text))
            except ValueError:
                message = response.text[:200]
            if response.status_code >= 500 and response.status_code != 503:
                raise WorkerFailed(f"worker {record.worker_id} failed: {message}")
            raise WorkerRefused(response.status_code, message)
        lines = response.aiter_lines()
        first = decode_event(await anext(lines))
    except (httpx.HTTPError, StopAsyncIteration) as exc:
        await response.aclose()
        raise WorkerFailed(
            f"worker {record.worker_id} failed before its first token: {exc!r}"
        ) from exc
    except BaseException:
        await response.aclose()
        raise
    if isinstance(first, Failed):
        await response.aclose()
        if 400 <= first.status < 500:
            raise WorkerRefused(first.status, first.message)
        raise WorkerFailed(f"worker {record.worker_id} failed: {first.message}")
    return Stream(record, record.session_kv_bytes, first, response, lines)


async def open_stream(
    registry: Registry,
    client: httpx.AsyncClient,
    request: GenerationRequest,
) -> Stream:
    """Start `request` on the best worker, retrying elsewhere until a first token arrives."""
    if registry.at_capacity():
        raise RelayError(503, "the system is at capacity: retry later")
    tried: set[str] = set()
    failures: list[str] = []
    while True:
        choice = pick(registry.candidates(tried))
        if choice is None:
            if failures:
                raise RelayError(502, "; ".join(failures))
            if not registry.candidates(set()):
                raise RelayError(503, "no healthy worker is available: retry later")
            raise RelayError(503, "all workers are at capacity: retry later")
        record = registry.workers[choice.worker_id]
        tried.add(record.worker_id)
        registry.reserve(record)
        kv_bytes = record.session_kv_bytes
        try:
            return await record.breaker.call_async(
                _start, client, record, request, registry.settings
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


async def events(stream: Stream, registry: Registry) -> AsyncGenerator[Event, None]:
    """The stream's events from the first to the last (`Done` or `Failed`), then cleanup."""
    record, ttl = stream.record, registry.settings.session_ttl
    try:
        yield stream.first
        if not isinstance(stream.first, Token):
            return
        while True:
            try:
                line = await asyncio.wait_for(anext(stream.lines), ttl)
            except TimeoutError:
                yield Failed(f"session expired: no token for {ttl:g} s", 504)
                return
            except (httpx.HTTPError, StopAsyncIteration) as exc:
                failure = WorkerFailed(f"worker {record.worker_id} failed mid-stream: {exc!r}")
                record_failure(record.breaker, failure)
                yield Failed(failure.message, 502)
                return
            if not line:
                continue
            event = decode_event(line)
            yield event
            if isinstance(event, Done | Failed):
                return
    finally:
        registry.release(record, stream.kv_bytes)
        await stream.response.aclose()


async def collect(stream: Stream, registry: Registry) -> tuple[str, Done | Failed]:
    """The whole text and the last event (for non-streaming requests)."""
    parts: list[str] = []
    async for event in events(stream, registry):
        if isinstance(event, Token):
            parts.append(event.text)
        else:
            return "".join(parts), event
    return "".join(parts), Failed("the stream ended without a last event", 502)
