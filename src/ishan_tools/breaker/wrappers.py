"""The decorator's wrappers: for a coroutine function, `call_async`; for a plain one,
`CircuitBreaker.call` inlined, without timing or with.

The decorator is the path most code takes, so its wrapper is `call` without `call`'s frame
(see `ishan_tools.breaker.circuit`). Which one a function gets is decided when it is
decorated: the timed wrapper, which reads the breaker's clock before and after the call, only
when the breaker counts slow calls (`slow_call_duration` is set).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, Protocol

from ishan_tools.breaker.state import Callback, CircuitBreakerOpenError
from ishan_tools.breaker.store import ORDINARY, Permit, StateStore

P = ParamSpec("P")


class CircuitBreaker(Protocol):
    """What the wrappers use of `ishan_tools.breaker.circuit.CircuitBreaker` (which imports
    them: this module names no class of its)."""

    _store: StateStore
    _successes: itertools.count[int]
    on_success: Callback | None
    clock: Callable[[], float]

    def _acquire(self) -> Permit: ...

    def _record(self, permit: Permit, exc: BaseException | None, slow: bool = False) -> None: ...

    def _fallback(self, refused: CircuitBreakerOpenError, args: Any, kwargs: Any) -> Any: ...

    async def call_async(
        self, func: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any: ...


def plain_wrapper(breaker: CircuitBreaker, func: Callable[P, Any]) -> Callable[P, Any]:
    """`breaker.call(func, ...)` for a breaker that does not time its calls."""
    store, successes = breaker._store, breaker._successes

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            permit = ORDINARY if store.quiet else breaker._acquire()
        except CircuitBreakerOpenError as refused:
            return breaker._fallback(refused, args, kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            breaker._record(permit, exc)
            raise
        if store.quiet and breaker.on_success is None:
            next(successes)
        else:
            breaker._record(permit, None)
        return result

    return wrapper


def timed_wrapper(
    breaker: CircuitBreaker, func: Callable[P, Any], slow_after: float
) -> Callable[P, Any]:
    """`breaker.call(func, ...)` for a breaker that counts calls slower than `slow_after`."""
    store, successes, clock = breaker._store, breaker._successes, breaker.clock

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            permit = ORDINARY if store.quiet else breaker._acquire()
        except CircuitBreakerOpenError as refused:
            return breaker._fallback(refused, args, kwargs)
        start = clock()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            breaker._record(permit, exc, clock() - start > slow_after)
            raise
        if clock() - start > slow_after:
            breaker._record(permit, None, True)
        elif store.quiet and breaker.on_success is None:
            next(successes)
        else:
            breaker._record(permit, None)
        return result

    return wrapper


def async_wrapper(
    breaker: CircuitBreaker, func: Callable[P, Awaitable[Any]]
) -> Callable[P, Awaitable[Any]]:
    """`await breaker.call_async(func, ...)`."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        return await breaker.call_async(func, *args, **kwargs)

    return wrapper
