"""Stand-in for the circuit breaker's state-store seam, until the breaker has it.

The breaker is being reshaped (one pair of internal steps, acquire a permit / record an
outcome, over a pluggable state store with an in-memory default). These are the types a
store exchanges with the breaker there, under the same names, so that `redis_breaker` plugs
in unchanged: once `ishan_tools.breaker.store` exists, import them from it and delete this
module.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from ishan_tools.breaker import CircuitState

__all__ = [
    "ORDINARY",
    "BreakerRules",
    "Outcome",
    "Permit",
    "Refused",
    "StateStore",
    "StoreView",
    "Transition",
]

Transition = tuple[CircuitState, CircuitState]


@dataclass(frozen=True)
class BreakerRules:
    """When a closed circuit opens (`failure_threshold` failures in a row; the other counting
    modes of the breaker have their own fields there) and how it recovers."""

    failure_threshold: int = 5
    recovery_timeout: float = 60.0
    failure_window: float | None = None
    failure_rate_threshold: float | None = None
    half_open_max_calls: int = 1
    success_threshold: int = 1


class Outcome(enum.Enum):
    """How an admitted call ended, as the breaker classified it."""

    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"


class Permit:
    """A store's admission of one call: `trial` for a half-open trial, the `transition`
    the admission made (open -> half-open), and the store's own `token`."""

    __slots__ = ("token", "transition", "trial")

    def __init__(
        self, *, trial: bool, transition: Transition | None = None, token: object = None
    ) -> None:
        self.trial = trial
        self.transition = transition
        self.token = token


ORDINARY = Permit(trial=False)


class Refused(Exception):
    """The circuit admits no call now; a trial may come in `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


@dataclass(frozen=True)
class StoreView:
    """A reading of a store; `transition` is a move the reading made, if any."""

    state: CircuitState
    opened_at: float | None
    retry_after: float
    current_failures: int
    transition: Transition | None = None


class StateStore(Protocol):
    """Keeps one circuit's state: `acquire` before a call, `record` after it."""

    quiet: bool

    def acquire(self) -> Permit: ...

    def record(self, permit: Permit, outcome: Outcome) -> Transition | None: ...

    def read(self) -> StoreView: ...

    def force(self, state: CircuitState) -> Transition | None: ...
