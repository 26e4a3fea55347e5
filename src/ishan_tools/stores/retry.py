"""Calls to a Redis server that may be away for a while (a restart, a blip), retried.

`RedisRetry` is what a process's async calls go through: while the server is away it waits,
with backoff, at most `timeout` seconds in a row, telling its caller when the server went and
came back; after that it raises the caller's error, and keeps it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ishan_tools.errors import IshanError
from ishan_tools.stores.client import REDIS_DOWN, cancellable

__all__ = ["RedisRetry"]

T = TypeVar("T")


def _nothing(*args: Any) -> None:
    return None


class RedisRetry:
    """`await retry(func, *args)`: `await func(*args)`, retried with backoff while the server
    is away, at most `timeout` seconds in a row. `on_lost(exc)` and `on_back(after_s)` hear
    when it goes and comes back; after `timeout` it raises `give_up(exc, waited_s)`, kept in
    `failure`."""

    def __init__(
        self,
        timeout: float,
        *,
        give_up: Callable[[BaseException, float], IshanError],
        on_lost: Callable[[BaseException], None] = _nothing,
        on_back: Callable[[float], None] = _nothing,
    ) -> None:
        self.timeout = timeout
        self.give_up = give_up
        self.on_lost = on_lost
        self.on_back = on_back
        self.failure: IshanError | None = None
        self._down_since: float | None = None

    async def __call__(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        delay = 0.05
        while True:
            try:
                result = await cancellable(func, *args)
            except REDIS_DOWN as exc:
                now = time.monotonic()
                if self._down_since is None:
                    self._down_since = now
                    self.on_lost(exc)
                waited = now - self._down_since
                if waited >= self.timeout:
                    self.failure = self.give_up(exc, waited)
                    raise self.failure from None
                await asyncio.sleep(min(delay, self.timeout - waited))
                delay = min(delay * 2, 1.0)
                continue
            if self._down_since is not None:
                self.on_back(self._pause())
            return result

    def _pause(self) -> float:
        started, self._down_since = self._down_since, None
        return 0.0 if started is None else time.monotonic() - started
