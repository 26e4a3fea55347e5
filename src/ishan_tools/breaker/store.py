"""Where a circuit's state lives: the `StateStore` seam and the in-memory default.

A `CircuitBreaker` keeps its callbacks, fallback, exception classification and call totals
itself, and asks a store for everything two processes guarding the same thing must agree on:
the state, when it opened, the failures counted towards opening, and the half-open trials in
flight. The store is asked at two steps of every call:

- `acquire()` before the call: returns a `Permit` (`ORDINARY` for a call of a closed circuit,
  a trial permit while half-open, moving an open circuit whose recovery timeout has passed to
  half-open first), or raises `Refused(retry_after)`;
- `record(permit, outcome, slow)` after it: a success, a failure or an ignored exception of
  the call that holds `permit`, and whether it took longer than `rules.slow_call_duration`
  (the breaker times its calls only when that is set); returns the transition it caused.

`read()` and `force(state)` serve inspection and manual control. Transitions happen inside
the store, atomically; the breaker runs the callbacks for the transitions a store reports.

`MemoryStore` is the default: one process, one `threading.Lock`, and a lock-free closed path
(see `quiet`). A store shared across processes (Redis, for the crawler's workers) implements
the same four methods, each as one atomic operation (a Lua script), with its own clock (Redis'
`TIME`) in place of the breaker's:
- `acquire()`: closed -> `ORDINARY`; open before the timeout -> `Refused(retry_after)`; open
  after it -> half-open and a trial; half-open -> a trial while fewer than
  `rules.half_open_max_calls` are in flight, else `Refused(0)`. A trial permit may carry a
  token (a lease that expires if its holder dies, so the slot comes back);
- `record()`: a trial's success counts towards `rules.success_threshold`, its failure
  re-opens; an ordinary call's failure (and, in the consecutive and rate modes, its success)
  updates the counter of `rules`' mode, and opening happens in the same operation. With
  slow-call counting on, every ordinary success or failure also enters the window of the last
  `rules.sliding_window_size` calls, and a slow one opens the circuit once `minimum_calls` are
  in it and the slow share is at least `rules.slow_call_rate_threshold`; a slow trial re-opens
  once the slow trials reach that share of `success_threshold` (see `MemoryStore`);
- `read()` and `force()` likewise.
Its `quiet` is at best its last view of the shared state (see `StateStore.quiet`).

A store whose steps are I/O can also be an `AsyncStateStore`: `acquire_async()` and
`record_async(permit, outcome)`, the same two steps as coroutines. The breaker checks once,
when it builds the store, and its async entry points (`call_async`, `async with`, the async
decorator) then await those; its sync entry points, inspection and manual control keep using
the sync four, so such a store has both faces (one of them may refuse, naming the other).
"""

from __future__ import annotations

import enum
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ishan_tools.breaker.counting import (
    ConsecutiveCounter,
    FailureCounter,
    RateCounter,
    SlowCallCounter,
    Tally,
    WindowCounter,
)
from ishan_tools.breaker.state import CLOSED, HALF_OPEN, OPEN, CircuitState

Transition = tuple[CircuitState, CircuitState]


@dataclass(frozen=True)
class BreakerRules:
    """What a store applies: when a closed circuit opens, and how it recovers.

    Exactly one counting mode: consecutive failures (default), failures within
    `failure_window` seconds, or a failure share of `failure_rate_threshold` percent of the
    last `sliding_window_size` calls once `minimum_calls` were seen. Slow calls, when
    `slow_call_duration` (seconds) is set, are counted in every mode over the last
    `sliding_window_size` calls: a share of `slow_call_rate_threshold` (0-1, default 1.0)
    opens the circuit once `minimum_calls` were seen.
    """

    failure_threshold: int = 5
    recovery_timeout: float = 60.0
    failure_window: float | None = None
    failure_rate_threshold: float | None = None
    sliding_window_size: int = 100
    minimum_calls: int = 100
    half_open_max_calls: int = 1
    success_threshold: int = 1
    slow_call_duration: float | None = None
    slow_call_rate_threshold: float | None = None

    def __post_init__(self) -> None:
        self._check_slow_calls()
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if self.recovery_timeout < 0:
            raise ValueError("recovery_timeout must not be negative")
        if self.failure_window is not None and self.failure_window <= 0:
            raise ValueError("failure_window must be positive")
        if self.failure_rate_threshold is not None:
            if self.failure_window is not None:
                raise ValueError("choose failure_window or failure_rate_threshold, not both")
            if not 0 < self.failure_rate_threshold <= 100:
                raise ValueError("failure_rate_threshold is a percentage in (0, 100]")
            if self.sliding_window_size < 1:
                raise ValueError("sliding_window_size must be at least 1")
        if self.half_open_max_calls < 1 or self.success_threshold < 1:
            raise ValueError("half_open_max_calls and success_threshold must be at least 1")

    def _check_slow_calls(self) -> None:
        duration, rate = self.slow_call_duration, self.slow_call_rate_threshold
        if duration is None:
            if rate is not None:
                raise ValueError("slow_call_rate_threshold needs slow_call_duration (seconds)")
            return
        if isinstance(duration, bool) or not 0 < duration < math.inf:
            raise ValueError(
                f"slow_call_duration must be a positive number of seconds, not {duration!r}"
            )
        if rate is None:
            object.__setattr__(self, "slow_call_rate_threshold", 1.0)
        elif isinstance(rate, bool) or not 0 < rate <= 1:
            raise ValueError(
                f"slow_call_rate_threshold is a fraction in (0, 1] (0.5: half the calls), "
                f"not {rate!r}"
            )
        if self.sliding_window_size < 1:
            raise ValueError("sliding_window_size must be at least 1")

    @property
    def slow_calls_counted(self) -> bool:
        """Whether calls are timed and slow ones counted (`slow_call_duration` is set)."""
        return self.slow_call_duration is not None

    def make_counter(self) -> FailureCounter:
        """A fresh counter for this counting mode."""
        if self.failure_rate_threshold is not None:
            return RateCounter(
                self.failure_rate_threshold, self.sliding_window_size, self.minimum_calls
            )
        if self.failure_window is not None:
            return WindowCounter(self.failure_threshold, self.failure_window)
        return ConsecutiveCounter(self.failure_threshold)

    def make_slow_counter(self, successes: Tally) -> SlowCallCounter:
        """A fresh slow-call counter that reads the breaker's `successes`."""
        return SlowCallCounter(
            self.slow_call_rate_threshold or 1.0,
            self.sliding_window_size,
            self.minimum_calls,
            successes,
        )


class Outcome(enum.Enum):
    """How an admitted call ended, as the breaker classified it."""

    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"  # excluded, or refused by failure_predicate: neither counts


@dataclass(frozen=True, slots=True, kw_only=True)
class Permit:
    """A store's admission of one call, handed back to `record()`.

    `trial` is True for a half-open trial call. `transition` is the move `acquire()` made
    while admitting it (open -> half-open), for the breaker's callbacks. `token` is the
    store's own handle on the admission (a shared store's trial lease), opaque to the breaker.
    """

    trial: bool
    transition: Transition | None = None
    token: object = None


ORDINARY = Permit(trial=False)
"""The permit of every call of a closed circuit: one shared object, no allocation per call."""


class Refused(Exception):
    """Raised by `acquire()`: the circuit admits no call now.

    `retry_after` is the seconds until a trial may be admitted (0 while half-open with every
    trial slot taken).
    """

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


@dataclass(frozen=True)
class StoreView:
    """A consistent reading of a store; `transition` is a move the reading made, if any."""

    state: CircuitState
    opened_at: float | None
    retry_after: float
    current_failures: int
    transition: Transition | None = None
    slow_calls: int = 0  # slow calls among the last `window_calls` (slow-call counting on)
    window_calls: int = 0


class StateStore(Protocol):
    """Keeps one circuit's state; see the module docstring for the two steps."""

    quiet: bool
    """True only while the circuit is closed and a success that was not slow, whatever
    permit its call holds, changes nothing in the store: the breaker then admits without
    `acquire()` and records such a success without `record()`. (A store may also have a
    `successes` attribute, a `Tally` that the breaker then bumps once per success, for its own
    totals too: a way to count calls with no step; `MemoryStore` has one while it counts slow
    calls.) A store shared across processes keeps it False, so that it
    is asked at both steps, or keeps it as of its last reply (the crawl's Redis store: closed
    with no failures counted), so that other processes' failures reach it a reply late."""

    def acquire(self) -> Permit:
        """Admit one call or raise `Refused`; move open to half-open when the timeout passed."""
        ...

    def record(self, permit: Permit, outcome: Outcome, slow: bool = False) -> Transition | None:
        """Record how the call holding `permit` ended (and whether it was slow); the
        transition it caused, if any."""
        ...

    def read(self) -> StoreView:
        """The state now (an open circuit whose timeout passed moves to half-open)."""
        ...

    def force(self, state: CircuitState) -> Transition | None:
        """Manual control: open (restarting the timeout) or close (forgetting failures)."""
        ...


@runtime_checkable
class AsyncStateStore(Protocol):
    """The two steps as coroutines, for a store whose steps are I/O (a Redis client's)."""

    quiet: bool

    async def acquire_async(self) -> Permit:
        """`acquire()`, awaited."""
        ...

    async def record_async(
        self, permit: Permit, outcome: Outcome, slow: bool = False
    ) -> Transition | None:
        """`record(permit, outcome, slow)`, awaited."""
        ...


StoreFactory = Callable[[BreakerRules, Callable[[], float]], StateStore]
"""Builds a breaker's store from its rules and clock (`MemoryStore` itself is one)."""


class MemoryStore:
    """The state of a circuit in this process, under one `threading.Lock`.

    The lock is held for a few attribute updates, never across a call or an await. The
    closed-state success path takes no lock (`quiet`), and the rate counter's success is one
    `deque.append`, atomic under the GIL. Counting slow calls adds no step for a success that
    was not slow, once `minimum_calls` are in the window: its `successes` tally, which the
    breaker bumps anyway, tells the slow-call counter how many calls there were.

    Half-open with slow-call counting on: a trial that fails re-opens at once (slow or not); a
    slow trial that succeeded counts towards `slow_trials`, and once those reach
    `slow_call_rate_threshold` of `success_threshold` (the trials that decide) the circuit
    re-opens. So with the defaults (one trial, threshold 1.0) a slow trial re-opens, and with
    `success_threshold=4` and 0.5, the second slow trial does; otherwise `success_threshold`
    trial successes, slow or not, close it.
    """

    def __init__(self, rules: BreakerRules, clock: Callable[[], float]) -> None:
        self.rules = rules
        self.clock = clock
        self.state = CLOSED
        self.opened_at: float | None = None
        self.trials_in_flight = 0
        self.trial_successes = 0
        self.counter = rules.make_counter()
        self.successes = Tally() if rules.slow_calls_counted else None
        self.slow_calls: SlowCallCounter | None = None
        if self.successes is not None:
            self.slow_calls = rules.make_slow_counter(self.successes)
        self.slow_trials = 0
        self._lock = threading.Lock()
        self._refresh_quiet()

    def _refresh_quiet(self) -> None:
        self.quiet = (
            self.state is CLOSED
            and not self.counter.wants_successes
            and (self.slow_calls is None or self.slow_calls.warm)
        )

    # -- the two steps -------------------------------------------------------------------------

    def acquire(self) -> Permit:
        if self.state is CLOSED:
            return ORDINARY
        with self._lock:
            now = self.clock()
            transition = self._half_open_if_due(now)
            state = self.state
            if state is CLOSED:
                return ORDINARY
            if state is HALF_OPEN and self.trials_in_flight < self.rules.half_open_max_calls:
                self.trials_in_flight += 1
                return Permit(trial=True, transition=transition)
            retry_after = self._retry_after(now) if state is OPEN else 0.0
        raise Refused(retry_after)

    def record(self, permit: Permit, outcome: Outcome, slow: bool = False) -> Transition | None:
        slow_calls = self.slow_calls
        if (
            outcome is Outcome.SUCCESS
            and not permit.trial
            and not slow
            and (slow_calls is None or slow_calls.warm)  # then the tally counted it
        ):
            if isinstance(self.counter, RateCounter):
                self.counter.success()  # lock-free: one deque.append
                return None
            if self.quiet:
                return None
        with self._lock:
            if permit.trial:
                return self._trial_ended(outcome, slow)
            if self.state is not CLOSED or outcome is Outcome.IGNORED:
                return None
            failed = outcome is Outcome.FAILURE
            tripped = False
            if slow_calls is not None and (slow or failed or not slow_calls.warm):
                tripped = slow_calls.add(slow, failed)
            if outcome is Outcome.SUCCESS:
                self.counter.success()
            elif self.counter.failure(self.clock()):
                tripped = True
            self._refresh_quiet()
            return self._move(OPEN) if tripped else None

    def _trial_ended(self, outcome: Outcome, slow: bool) -> Transition | None:
        if self.state is not HALF_OPEN:
            return None
        self.trials_in_flight = max(0, self.trials_in_flight - 1)
        if outcome is Outcome.FAILURE:
            return self._move(OPEN)
        rate = self.rules.slow_call_rate_threshold
        if slow and rate is not None and outcome is Outcome.SUCCESS:
            self.slow_trials += 1
            if self.slow_trials / self.rules.success_threshold >= rate:
                return self._move(OPEN)
        if outcome is Outcome.SUCCESS:
            self.trial_successes += 1
            if self.trial_successes >= self.rules.success_threshold:
                return self._move(CLOSED)
        return None

    # -- inspection and manual control ---------------------------------------------------------

    def read(self) -> StoreView:
        with self._lock:
            now = self.clock()
            transition = self._half_open_if_due(now) if self.state is OPEN else None
            slow, window = (0, 0) if self.slow_calls is None else self.slow_calls.current()
            return StoreView(
                state=self.state,
                opened_at=self.opened_at,
                retry_after=max(0.0, self._retry_after(now)) if self.state is OPEN else 0.0,
                current_failures=self.counter.current(now),
                transition=transition,
                slow_calls=slow,
                window_calls=window,
            )

    def force(self, state: CircuitState) -> Transition | None:
        with self._lock:
            transition = self._move(state)
            if state is OPEN:
                self.opened_at = self.clock()
            else:
                self.counter.clear()
                if self.slow_calls is not None:
                    self.slow_calls.clear()
                self._refresh_quiet()
            return transition

    # -- transitions (lock held) ---------------------------------------------------------------

    def _half_open_if_due(self, now: float) -> Transition | None:
        opened_at = self.opened_at
        if (
            self.state is OPEN
            and opened_at is not None
            and now - opened_at >= self.rules.recovery_timeout
        ):
            return self._move(HALF_OPEN)
        return None

    def _retry_after(self, now: float) -> float:
        if self.opened_at is None:
            return 0.0
        return self.opened_at + self.rules.recovery_timeout - now

    def _move(self, new: CircuitState) -> Transition | None:
        old = self.state
        if old is new:
            return None
        self.state = new
        self.trials_in_flight = 0
        self.trial_successes = 0
        self.slow_trials = 0
        if new is OPEN:
            self.opened_at = self.clock()
        elif new is CLOSED:
            self.opened_at = None
            self.counter.clear()
            if self.slow_calls is not None:
                self.slow_calls.clear()
        self._refresh_quiet()
        return (old, new)
