"""`CircuitBreaker` and its decorators: every entry point is a shell around two steps.

`_acquire()` asks the state store for a permit before the call (or raises
`CircuitBreakerOpenError`); `_record(permit, exc)` tells it how the call ended and runs the
callbacks that follow. `call`, `call_async`, the context manager and the decorators do
nothing else, so a store (`ishan_tools.breaker.store`) sees every call at the same two points.
While the store is `quiet` a success needs neither step; the two sync shells (`call` and the
sync decorator) then skip the steps' frames, which is most of a guarded call's cost. A store
that is also an `AsyncStateStore` gets the async shells' steps awaited (`_acquire_async`,
`_record_async`); which pair they take is decided once, when the breaker builds its store.

With `slow_call_duration` set, every entry point reads the breaker's clock before and after
the call and hands `_record` whether it took longer; a success that was not slow, while the
store is quiet, still takes no step (a store that counts calls reads the breaker's success
tally, `successes`).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from ishan_tools.breaker.state import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerStats,
    Callback,
    CircuitBreakerOpenError,
    CircuitState,
    StateCallback,
)
from ishan_tools.breaker.store import (
    ORDINARY,
    AsyncStateStore,
    BreakerRules,
    MemoryStore,
    Outcome,
    Permit,
    Refused,
    StoreFactory,
    StoreView,
    Transition,
)
from ishan_tools.breaker.totals import CallTotals
from ishan_tools.breaker.wrappers import async_wrapper, plain_wrapper, timed_wrapper

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
        slow_call_duration: float | None = None,
        slow_call_rate_threshold: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        store: StoreFactory = MemoryStore,
        on_state_change: StateCallback | None = None,
        on_failure: Callback | None = None,
        on_success: Callback | None = None,
        on_open: Callback | None = None,
        on_close: Callback | None = None,
        on_half_open: Callback | None = None,
    ) -> None:
        self.rules = BreakerRules(
            failure_threshold=failure_threshold,
            recovery_timeout=float(recovery_timeout),
            failure_window=failure_window,
            failure_rate_threshold=failure_rate_threshold,
            sliding_window_size=sliding_window_size,
            minimum_calls=min(sliding_window_size, minimum_calls or sliding_window_size),
            half_open_max_calls=half_open_max_calls,
            success_threshold=success_threshold,
            slow_call_duration=slow_call_duration,
            slow_call_rate_threshold=slow_call_rate_threshold,
        )
        # The rules as constructed, under their option names; the store applies `rules`.
        self.failure_threshold = failure_threshold
        self.recovery_timeout = self.rules.recovery_timeout
        self.failure_window = failure_window
        self.failure_rate_threshold = failure_rate_threshold
        self.sliding_window_size = sliding_window_size
        self.minimum_calls = self.rules.minimum_calls
        self.half_open_max_calls = half_open_max_calls
        self.success_threshold = success_threshold
        self.slow_call_rate_threshold = self.rules.slow_call_rate_threshold
        # `_slow_after`: seconds after which a call counts as slow; None: calls are not timed.
        self.slow_call_duration = self._slow_after = slow_call_duration

        self.name = name or "circuit_breaker"
        self.failure_predicate = failure_predicate
        self.fallback = fallback
        self.excluded_exceptions: tuple[type[BaseException], ...] = excluded_exceptions or ()
        self.clock = clock
        self.on_state_change = on_state_change
        self.on_failure = on_failure
        self.on_success = on_success
        self.on_open = on_open
        self.on_close = on_close
        self.on_half_open = on_half_open

        self._store = store(self.rules, clock)
        # What the async entry points await instead of the sync steps, if the store has it.
        self._async_store = self._store if isinstance(self._store, AsyncStateStore) else None
        self._totals = CallTotals(clock, getattr(self._store, "successes", None))
        self._successes = self._totals.successes  # one attribute away, for the fast path
        # The context manager's permits, with the clock's reading at each entry.
        self._permits: contextvars.ContextVar[tuple[tuple[Permit, float], ...]] = (
            contextvars.ContextVar(f"ishan_breaker_permits_{id(self)}", default=())
        )

    # -- the two steps ------------------------------------------------------------------------

    def _acquire(self) -> Permit:
        """Before a call: the store's permit, or CircuitBreakerOpenError (counted)."""
        store = self._store
        if store.quiet:
            return ORDINARY
        try:
            permit = store.acquire()
        except Refused as refused:
            raise self._refused(refused) from None
        if permit.transition is not None:
            self._fire_transition(permit.transition)
        return permit

    async def _acquire_async(self, store: AsyncStateStore) -> Permit:
        """`_acquire()` for the async entry points of a store with async steps."""
        if store.quiet:
            return ORDINARY
        try:
            permit = await store.acquire_async()
        except Refused as refused:
            raise self._refused(refused) from None
        self._fire_transition(permit.transition)
        return permit

    def _refused(self, refused: Refused) -> CircuitBreakerOpenError:
        self._totals.rejected()
        return CircuitBreakerOpenError(self.name, refused.retry_after)

    def _record(self, permit: Permit, exc: BaseException | None, slow: bool = False) -> None:
        """After a call: its outcome (`exc` None for a success) and whether it was `slow`, to
        the totals and the store."""
        store = self._store
        if exc is None:
            next(self._successes)
            if not slow and store.quiet and self.on_success is None:
                return
        outcome = self._count(exc, slow)
        # `slow` only when it is: a store that predates slow calls serves a breaker without.
        transition = store.record(permit, outcome, True) if slow else store.record(permit, outcome)
        self._recorded(outcome, transition)

    async def _record_async(
        self, store: AsyncStateStore, permit: Permit, exc: BaseException | None, slow: bool
    ) -> None:
        """`_record()` for the async entry points of a store with async steps."""
        if exc is None:
            next(self._successes)
            if not slow and store.quiet and self.on_success is None:
                return
        outcome = self._count(exc, slow)
        if slow:
            transition = await store.record_async(permit, outcome, True)
        else:
            transition = await store.record_async(permit, outcome)
        self._recorded(outcome, transition)

    def _count(self, exc: BaseException | None, slow: bool) -> Outcome:
        """The outcome of a call that raised `exc` (None: it succeeded; its success is counted
        already), added to the totals with its slowness (an ignored exception is no call)."""
        if exc is None:
            outcome = Outcome.SUCCESS
        else:
            outcome = self._classify(exc)
            if outcome is Outcome.FAILURE:
                self._totals.failure(exc)
            else:
                self._totals.ignored()
        if slow and outcome is not Outcome.IGNORED:
            self._totals.slow()
        return outcome

    def _slow_since(self, start: float) -> bool:
        """Whether a call that started at `start` (the clock's reading) counts as slow."""
        slow_after = self._slow_after
        return slow_after is not None and self.clock() - start > slow_after

    def _recorded(self, outcome: Outcome, transition: Transition | None) -> None:
        """The callbacks for an outcome the store recorded and the transition it caused."""
        pending: list[Callable[[], object]] = []
        if outcome is Outcome.SUCCESS and self.on_success is not None:
            pending.append(self.on_success)
        elif outcome is Outcome.FAILURE and self.on_failure is not None:
            pending.append(self.on_failure)
        if transition is not None:
            pending += self._callbacks(transition)
        self._fire(pending)

    def _classify(self, exc: BaseException) -> Outcome:
        """Failure unless excluded (checked first) or refused by `failure_predicate`."""
        if not isinstance(exc, Exception):
            return Outcome.IGNORED
        if self.excluded_exceptions and isinstance(exc, self.excluded_exceptions):
            return Outcome.IGNORED
        predicate = self.failure_predicate
        try:
            counts = predicate is None or bool(predicate(exc))
        except Exception:
            log.exception("circuit breaker %r: failure_predicate raised", self.name)
            counts = True
        return Outcome.FAILURE if counts else Outcome.IGNORED

    def _fallback(self, refused: CircuitBreakerOpenError, args: Any, kwargs: Any) -> Any:
        """What a refused call returns: the fallback's result, else the refusal is raised."""
        if self.fallback is None:
            raise refused
        return self.fallback(*args, **kwargs)

    # -- callbacks ------------------------------------------------------------------------------

    def _callbacks(self, transition: Transition) -> list[Callable[[], object]]:
        old, new = transition
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

    def _fire_transition(self, transition: Transition | None) -> None:
        if transition is not None:
            self._fire(self._callbacks(transition))

    # -- calling through the breaker --------------------------------------------------------

    def call(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call `func(*args, **kwargs)` through the breaker (the fallback's result if open)."""
        store = self._store
        try:
            permit = ORDINARY if store.quiet else self._acquire()
        except CircuitBreakerOpenError as refused:
            return cast(R, self._fallback(refused, args, kwargs))
        slow_after = self._slow_after
        if slow_after is None:
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._record(permit, exc)
                raise
            if store.quiet and self.on_success is None:
                next(self._successes)
            else:
                self._record(permit, None)
            return result
        clock = self.clock
        start = clock()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self._record(permit, exc, clock() - start > slow_after)
            raise
        if clock() - start > slow_after:
            self._record(permit, None, True)
        elif store.quiet and self.on_success is None:
            next(self._successes)
        else:
            self._record(permit, None)
        return result

    async def call_async(
        self, func: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await `func(*args, **kwargs)` through the breaker (the fallback's result if open)."""
        steps = self._async_store
        try:
            permit = self._acquire() if steps is None else await self._acquire_async(steps)
        except CircuitBreakerOpenError as refused:
            result = self._fallback(refused, args, kwargs)
            if inspect.isawaitable(result):
                result = await result
            return cast(R, result)
        start = self.clock() if self._slow_after is not None else 0.0
        try:
            value = await func(*args, **kwargs)
        except BaseException as exc:
            await self._exited(steps, permit, exc, start)
            raise
        await self._exited(steps, permit, None, start)
        return value

    async def _exited(
        self, steps: AsyncStateStore | None, permit: Permit, exc: BaseException | None, at: float
    ) -> None:
        """`_record` for an async entry point, awaited where the store has async steps."""
        slow = self._slow_since(at)
        if steps is None:
            self._record(permit, exc, slow)
        else:
            await self._record_async(steps, permit, exc, slow)

    @overload
    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        """Use the breaker as a decorator; the wrapper exposes it as `.breaker`."""
        if inspect.iscoroutinefunction(func):
            wrapper = async_wrapper(self, func)
        elif self._slow_after is None:
            wrapper = plain_wrapper(self, func)
        else:
            wrapper = timed_wrapper(self, func, self._slow_after)
        wrapper.breaker = self  # type: ignore[attr-defined]
        return wrapper

    # -- context manager ----------------------------------------------------------------------

    def __enter__(self) -> CircuitBreaker:
        self._push_permit(self._acquire())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit, start = self._pop_permit()
        self._record(permit, exc, self._slow_since(start))

    def _push_permit(self, permit: Permit) -> None:
        start = self.clock() if self._slow_after is not None else 0.0
        self._permits.set((*self._permits.get(), (permit, start)))

    def _pop_permit(self) -> tuple[Permit, float]:
        stack = self._permits.get()
        self._permits.set(stack[:-1])
        return stack[-1] if stack else (ORDINARY, self.clock())

    async def __aenter__(self) -> CircuitBreaker:
        steps = self._async_store
        if steps is None:
            return self.__enter__()
        self._push_permit(await self._acquire_async(steps))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit, start = self._pop_permit()
        await self._exited(self._async_store, permit, exc, start)

    # -- manual control and inspection ------------------------------------------------------

    def _read(self) -> StoreView:
        view = self._store.read()
        self._fire_transition(view.transition)
        return view

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose timeout has passed reads as half-open."""
        return self._read().state

    @property
    def failure_count(self) -> int:
        """Failures counted towards opening now (consecutive, in the window, or in the ring)."""
        return self._read().current_failures

    @property
    def slow_calls(self) -> int:
        """This breaker's slow calls since creation or `reset()` (no store read)."""
        return self._totals.slow_calls

    def open(self) -> None:
        """Open the circuit now; it admits a trial after `recovery_timeout`."""
        self._fire_transition(self._store.force(OPEN))

    def close(self) -> None:
        """Close the circuit now and forget counted failures."""
        self._fire_transition(self._store.force(CLOSED))

    def reset(self) -> None:
        """Close the circuit and zero every counter, as if new."""
        self.close()
        self._totals.reset()

    def stats(self) -> BreakerStats:
        """The store's state and this breaker's own totals (its calls, not another process's)."""
        return self._totals.snapshot(self.name, self._read())

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.state.value}>"
