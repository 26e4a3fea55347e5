"""One generation inside the engine: its `Prompt`, its `Session`, the `Channel` it streams on.

The engine and its decode loop share these types. The bounded, thread-safe channel carries
one session's events out of the engine: the engine thread offers events without ever
blocking, and a full channel means the reader is too slow, so the engine drops that reader
rather than stall every other session. Readers take events synchronously (`get`, for
`ishan infer run`) or from asyncio (`aget_all`, for the worker's HTTP stream).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ishan_tools.infer.config import GenerationRequest
from ishan_tools.infer.events import Done, Event, Failed


class Channel:
    """A bounded FIFO of events; the terminal event (Done/Failed) always fits."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[Event] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._wake: Callable[[], object] | None = None
        self.closed = False

    def offer(self, event: Event) -> bool:
        """Append `event` unless the channel is full or closed; never blocks."""
        with self._cond:
            if self.closed or len(self._items) >= self.capacity:
                return False
            self._append_locked(event)
            return True

    def close_with(self, event: Done | Failed) -> None:
        """Append the terminal event, over capacity if need be; later offers are refused."""
        with self._cond:
            if self.closed:
                return
            self.closed = True
            self._append_locked(event)

    def _append_locked(self, event: Event) -> None:
        self._items.append(event)
        self._cond.notify()
        wake, self._wake = self._wake, None
        if wake is not None:
            wake()

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to `timeout` seconds (None: forever); None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items), timeout):
                return None
            return self._items.popleft()

    async def aget_all(self) -> list[Event]:
        """Every event there is (at least one), awaited on the running event loop: a reader
        that fell behind takes what piled up in one go."""
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self._items:
                    items = list(self._items)
                    self._items.clear()
                    return items
                ready = loop.create_future()
                self._wake = functools.partial(loop.call_soon_threadsafe, _resolve, ready)
            await ready


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True)
class Prompt:
    """A request's prompt tokens, its stop strings, the KV cache it can fill, and the
    compiled GBNF grammar its output must follow (None: unconstrained)."""

    tokens: list[int]
    stop: tuple[str, ...]
    max_tokens: int
    kv_bytes: int
    grammar: str | None = None


class Session:
    """One generation inside the engine; read its events from `channel`."""

    def __init__(
        self, session_id: int, request: GenerationRequest, capacity: int, prompt: Prompt
    ) -> None:
        self.id = session_id
        self.request = request
        self.prompt = prompt
        self.channel = Channel(capacity)
        self.cancel_reason: str | None = None
        self.ahead = 0  # sessions running or waiting when it was queued

    @property
    def cancelled(self) -> bool:
        return self.cancel_reason is not None
