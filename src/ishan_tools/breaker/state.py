"""The circuit's states, the error raised while open, and the stats snapshot."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ishan_tools.errors import IshanError

Callback = Callable[[], object]
StateCallback = Callable[["CircuitState", "CircuitState"], object]


class CircuitState(enum.Enum):
    """The three states of a circuit."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN


class CircuitBreakerOpenError(IshanError):
    """Raised instead of calling through an open circuit.

    `name` is the breaker's name; `retry_after` the seconds until the next trial call is
    admitted (0 while the circuit is half-open and its trial slots are taken).
    """

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = max(0.0, retry_after)
        super().__init__(
            f"circuit '{name}' is open: calls are blocked, next trial in {self.retry_after:.1f}s"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.retry_after))


@dataclass(frozen=True)
class BreakerStats:
    """A snapshot of one breaker, taken under its lock.

    `slow_calls` counts this breaker's calls slower than `slow_call_duration` (successes and
    failures) since creation or `reset()`; `current_slow_calls` of the store's last
    `window_calls` calls were slow, a share of `slow_call_rate` (0 with no calls, or with
    slow calls not counted).
    """

    name: str
    state: CircuitState
    calls: int
    successes: int
    failures: int
    ignored: int
    rejected: int
    current_failures: int
    last_failure: str | None
    last_failure_at: float | None
    opened_at: float | None
    retry_after: float
    slow_calls: int = 0
    current_slow_calls: int = 0
    window_calls: int = 0
    slow_call_rate: float = 0.0
