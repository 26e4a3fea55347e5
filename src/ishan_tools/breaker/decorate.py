"""Decorators: `circuit_breaker(...)` and the wrapper behind `@breaker`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from ishan_tools.breaker.circuit import CircuitBreaker
from ishan_tools.breaker.state import CLOSED

P = ParamSpec("P")
R = TypeVar("R")


def wrap(breaker: CircuitBreaker, func: Callable[P, Any]) -> Callable[P, Any]:
    """Wrap `func` so each call goes through `breaker`, with the closed path inlined."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return await breaker.call_async(func, *args, **kwargs)

        async_wrapper.breaker = breaker  # type: ignore[attr-defined]
        return async_wrapper

    successes = breaker._successes

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        if breaker._state is CLOSED:
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                breaker._record_exception(exc, False)
                raise
            next(successes)
            if breaker._success_slow:
                breaker._record_success(False)
            return result
        return breaker._call_guarded(func, args, kwargs)

    wrapper.breaker = breaker  # type: ignore[attr-defined]
    return wrapper


def circuit_breaker(
    failure_threshold: int = 5,
    recovery_timeout: float = 60,
    **options: Any,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a sync or async function with its own `CircuitBreaker`.

    Options are `CircuitBreaker`'s; `name` defaults to the function's qualified name. The
    wrapper's `.breaker` attribute is the breaker, for `stats()` and manual control.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        settings = {"name": getattr(func, "__qualname__", None), **options}
        breaker = CircuitBreaker(failure_threshold, recovery_timeout, **settings)
        return cast(Callable[P, R], wrap(breaker, func))

    return decorate
