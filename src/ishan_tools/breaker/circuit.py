"""`CircuitBreaker`: admission, outcome recording and state transitions under one lock."""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from ishan_tools.breaker.counting import (
    ConsecutiveCounter,
    FailureCounter,
    RateCounter,
    WindowCounter,
)
from ishan_tools.breaker.state import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerStats,
    Callback,
    CircuitBreakerOpenError,
    CircuitState,
    StateCallback,
    counter_value,
)

log = logging.getLogger("ishan_tools.breaker")

P = ParamSpec("P")
R = TypeVar("R")


class CircuitBreaker:
    """A circuit breaker guarding one kind of call; see the `ishan_tools.breaker` docstring."""

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 60,
        *,
        failure_window: float | None = None,
        failure_predicate: Callable[[BaseException], bool] | None = None,
        fallback: Callable[..., Any] | None = None,
        excluded_exceptions: tuple[type[BaseException], ...] | None = None,
        name: str | None = None,
        failure_rate_threshold: float | None = None,
        sliding_window_size: int = 100,
        minimum_calls: int | None = None,
        half_open_max_calls: int = 1,
        success_threshold: int = 1,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateCallback | None = None,
        on_failure: Callback | None = None,
        on_success: Callback | None = None,
        on_open: Callback | None = None,
        on_close: Callback | None = None,
        on_half_open: Callback | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if recovery_timeout < 0:
            raise ValueError("recovery_timeout must not be negative")
        if failure_window is not None and failure_window <= 0:
            raise ValueError("failure_window must be positive")
        if failure_rate_threshold is not None:
            if failure_window is not None:
                raise ValueError("choose failure_window or failure_rate_threshold, not both")
            if not 0 < failure_rate_threshold <= 100:
                raise ValueError("failure_rate_threshold is a percentage in (0, 100]")
            if sliding_window_size < 1:
                raise ValueError("sliding_window_size must be at least 1")
        if half_open_max_calls < 1 or success_threshold < 1:
            raise ValueError("half_open_max_calls and success_threshold must be at least 1")
        self.name = name or "circuit_breaker"
        self.failure_threshold = failure_threshold
        self.recovery_timeout = float(recovery_timeout)
        self.failure_window = failure_window
        self.failure_predicate = failure_predicate
        self.fallback = fallback
        self.excluded_exceptions: tuple[type[BaseException], ...] = excluded_exceptions or ()
        self.failure_rate_threshold = failure_rate_threshold
        self.sliding_window_size = sliding_window_size
        self.minimum_calls = min(
            sliding_window_size, minimum_calls if minimum_calls else sliding_window_size
        )
        self.half_open_max_calls = half_open_max_calls
        self.success_threshold = success_threshold
        self.clock = clock
        self.on_state_change = on_state_change
        self.on_failure = on_failure
        self.on_open = on_open
        self.on_close = on_close
        self.on_half_open = on_half_open

        self._lock = threading.Lock()
        self._state = CLOSED
        self._counter = self._make_counter()
        self._opened_at: float | None = None
        self._trials_in_flight = 0
        self._trial_successes = 0
        self._successes = itertools.count()
        self._successes_before_reset = 0
        self._failures_total = 0
        self._ignored_total = 0
        self._rejected_total = 0
        self._last_failure: str | None = None
        self._last_failure_at: float | None = None
        self._permits: contextvars.ContextVar[tuple[bool, ...]] = contextvars.ContextVar(
            f"ishan_breaker_permits_{id(self)}", default=()
        )
        self._on_success: Callback | None = None
        self._success_slow = self._counter.wants_successes
        self.on_success = on_success

    # -- configuration that the fast path depends on ---------------------------------------

    @property
    def on_success(self) -> Callback | None:
        """Called with no arguments after each successful call."""
        return self._on_success

    @on_success.setter
    def on_success(self, callback: Callback | None) -> None:
        self._on_success = callback
        self._refresh_success_slow()

    def _refresh_success_slow(self) -> None:
        self._success_slow = self._counter.wants_successes or self._on_success is not None

    def _make_counter(self) -> FailureCounter:
        if self.failure_rate_threshold is not None:
            return RateCounter(
                self.failure_rate_threshold, self.sliding_window_size, self.minimum_calls
            )
        if self.failure_window is not None:
            return WindowCounter(self.failure_threshold, self.failure_window)
        return ConsecutiveCounter(self.failure_threshold)

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose timeout has passed reads as half-open."""
        if self._state is OPEN and self._recovery_due(self.clock()):
            self._fire(self._half_open_if_due())
        return self._state

    @property
    def failure_count(self) -> int:
        """Failures counted towards opening now (consecutive, in the window, or in the ring)."""
        with self._lock:
            return self._counter.current(self.clock())

    def _recovery_due(self, now: float) -> bool:
        return self._opened_at is not None and now - self._opened_at >= self.recovery_timeout

    def _retry_after(self, now: float) -> float:
        if self._opened_at is None:
            return 0.0
        return self._opened_at + self.recovery_timeout - now

    def _half_open_if_due(self) -> list[Callable[[], object]]:
        with self._lock:
            if self._state is OPEN and self._recovery_due(self.clock()):
                return self._transition_locked(HALF_OPEN)
            return []

    def _transition_locked(self, new: CircuitState) -> list[Callable[[], object]]:
        """Move to `new` (lock held); return the callbacks to fire once it is released."""
        old = self._state
        if old is new:
            return []
        self._state = new
        self._trials_in_flight = 0
        self._trial_successes = 0
        if new is OPEN:
            self._opened_at = self.clock()
        elif new is CLOSED:
            self._opened_at = None
            self._counter.clear()
            self._refresh_success_slow()
        pending: list[Callable[[], object]] = []
        if self.on_state_change is not None:
            pending.append(functools.partial(self.on_state_change, old, new))
        specific = {OPEN: self.on_open, CLOSED: self.on_close, HALF_OPEN: self.on_half_open}
        callback = specific[new]
        if callback is not None:
            pending.append(callback)
        return pending

    def _fire(self, callbacks: list[Callable[[], object]]) -> None:
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("circuit breaker %r: callback %r raised", self.name, callback)

    # -- admission and outcomes ---------------------------------------------------------------

    def _admit(self) -> bool:
        """Admit a call that found the circuit not closed; True when it holds a trial permit.

        Raises CircuitBreakerOpenError when the call must be rejected.
        """
        pending: list[Callable[[], object]] = []
        with self._lock:
            now = self.clock()
            if self._state is OPEN and self._recovery_due(now):
                pending = self._transition_locked(HALF_OPEN)
            state = self._state
            if state is CLOSED:
                permit = None
            elif state is HALF_OPEN and self._trials_in_flight < self.half_open_max_calls:
                self._trials_in_flight += 1
                permit = True
            else:
                self._rejected_total += 1
                permit = False
                retry_after = self._retry_after(now) if state is OPEN else 0.0
        self._fire(pending)
        if permit is False:
            raise CircuitBreakerOpenError(self.name, retry_after)
        return bool(permit)

    def _classify(self, exc: BaseException) -> bool:
        """True when `exc` counts as a failure."""
        if not isinstance(exc, Exception):
            return False
        if self.excluded_exceptions and isinstance(exc, self.excluded_exceptions):
            return False
        predicate = self.failure_predicate
        return predicate is None or bool(predicate(exc))

    def _record_exception(self, exc: BaseException, permit: bool) -> None:
        try:
            counts = self._classify(exc)
        except Exception:
            log.exception("circuit breaker %r: failure_predicate raised", self.name)
            counts = True
        if counts:
            self._record_failure(exc, permit)
        else:
            self._record_ignored(permit)

    def _record_ignored(self, permit: bool) -> None:
        with self._lock:
            self._ignored_total += 1
            if permit and self._state is HALF_OPEN:
                self._trials_in_flight = max(0, self._trials_in_flight - 1)

    def _record_failure(self, exc: BaseException, permit: bool) -> None:
        pending: list[Callable[[], object]] = []
        with self._lock:
            now = self.clock()
            self._failures_total += 1
            self._last_failure = f"{type(exc).__name__}: {exc}"
            self._last_failure_at = now
            if self.on_failure is not None:
                pending.append(self.on_failure)
            trial_failed = permit and self._state is HALF_OPEN
            tripped = not permit and self._state is CLOSED and self._counter.failure(now)
            self._refresh_success_slow()
            if trial_failed or tripped:
                pending += self._transition_locked(OPEN)
        self._fire(pending)

    def _record_success(self, permit: bool) -> None:
        """The success path of a call that held a permit or found extra work to do."""
        pending: list[Callable[[], object]] = []
        if self._on_success is not None:
            pending.append(self._on_success)
        if permit:
            with self._lock:
                if self._state is HALF_OPEN:
                    self._trials_in_flight = max(0, self._trials_in_flight - 1)
                    self._trial_successes += 1
                    if self._trial_successes >= self.success_threshold:
                        pending += self._transition_locked(CLOSED)
        elif isinstance(self._counter, RateCounter):
            self._counter.success()  # lock-free: one deque.append
        elif self._counter.wants_successes:
            with self._lock:
                if self._state is CLOSED:
                    self._counter.success()
                    self._refresh_success_slow()
        self._fire(pending)

    def _reject(self, exc: CircuitBreakerOpenError, args: Any, kwargs: Any) -> Any:
        if self.fallback is None:
            raise exc
        return self.fallback(*args, **kwargs)

    # -- calling through the breaker --------------------------------------------------------

    def call(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call `func(*args, **kwargs)` through the breaker (the fallback's result if open)."""
        if self._state is CLOSED:
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._record_exception(exc, False)
                raise
            next(self._successes)
            if self._success_slow:
                self._record_success(False)
            return result
        return cast(R, self._call_guarded(func, args, kwargs))

    def _call_guarded(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        try:
            permit = self._admit()
        except CircuitBreakerOpenError as exc:
            return self._reject(exc, args, kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self._record_exception(exc, permit)
            raise
        next(self._successes)
        self._record_success(permit)
        return result

    async def call_async(
        self, func: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await `func(*args, **kwargs)` through the breaker (the fallback's result if open)."""
        permit = False
        if self._state is not CLOSED:
            try:
                permit = self._admit()
            except CircuitBreakerOpenError as exc:
                result = self._reject(exc, args, kwargs)
                if inspect.isawaitable(result):
                    result = await result
                return cast(R, result)
        try:
            value = await func(*args, **kwargs)
        except BaseException as exc:
            self._record_exception(exc, permit)
            raise
        next(self._successes)
        if permit or self._success_slow:
            self._record_success(permit)
        return value

    @overload
    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        """Use the breaker as a decorator; the wrapper exposes it as `.breaker`."""
        from ishan_tools.breaker.decorate import wrap

        return wrap(self, func)

    # -- context manager ----------------------------------------------------------------------

    def __enter__(self) -> CircuitBreaker:
        permit = self._state is not CLOSED and self._admit()
        self._permits.set((*self._permits.get(), permit))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack = self._permits.get()
        permit = stack[-1] if stack else False
        self._permits.set(stack[:-1])
        if exc is None:
            next(self._successes)
            if permit or self._success_slow:
                self._record_success(permit)
        else:
            self._record_exception(exc, permit)

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- manual control and inspection ------------------------------------------------------

    def open(self) -> None:
        """Open the circuit now; it admits a trial after `recovery_timeout`."""
        with self._lock:
            pending = self._transition_locked(OPEN)
            self._opened_at = self.clock()
        self._fire(pending)

    def close(self) -> None:
        """Close the circuit now and forget counted failures."""
        with self._lock:
            pending = self._transition_locked(CLOSED)
            self._counter.clear()
            self._refresh_success_slow()
        self._fire(pending)

    def reset(self) -> None:
        """Close the circuit and zero every counter, as if new."""
        self.close()
        with self._lock:
            self._successes_before_reset = counter_value(self._successes)
            self._failures_total = self._ignored_total = self._rejected_total = 0
            self._last_failure = self._last_failure_at = None

    def stats(self) -> BreakerStats:
        """A consistent snapshot of state and counters."""
        state = self.state
        with self._lock:
            now = self.clock()
            successes = counter_value(self._successes) - self._successes_before_reset
            return BreakerStats(
                name=self.name,
                state=state,
                calls=successes + self._failures_total + self._ignored_total,
                successes=successes,
                failures=self._failures_total,
                ignored=self._ignored_total,
                rejected=self._rejected_total,
                current_failures=self._counter.current(now),
                last_failure=self._last_failure,
                last_failure_at=self._last_failure_at,
                opened_at=self._opened_at,
                retry_after=max(0.0, self._retry_after(now)) if state is OPEN else 0.0,
            )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._state.value}>"
