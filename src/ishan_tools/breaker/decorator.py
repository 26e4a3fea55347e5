"""`circuit_breaker(...)`: decorate a function with a `CircuitBreaker` of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from ishan_tools.breaker.circuit import CircuitBreaker

P = ParamSpec("P")
R = TypeVar("R")


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
        return cast(Callable[P, R], breaker(func))

    return decorate
