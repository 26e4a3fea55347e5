"""The state-store seam: every entry point asks the store at the same two steps.

A store shared across processes is never `quiet`, so the breaker must ask it before and after
every call, whichever way the call came in. `AskedStore` is such a store (a `MemoryStore`
behind it, a log of what it was asked).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ishan_tools.breaker import CircuitBreaker, CircuitBreakerOpenError, CircuitState
from ishan_tools.breaker.store import (
    BreakerRules,
    MemoryStore,
    Outcome,
    Permit,
    Refused,
    StoreView,
    Transition,
)


class AskedStore:
    """Never quiet; logs each step: 'acquire' ('trial' for a trial permit) or 'refused', then
    the outcome recorded."""

    quiet = False

    def __init__(self, rules: BreakerRules, clock: Callable[[], float]) -> None:
        self.rules = rules
        self.inner = MemoryStore(rules, clock)
        self.asked: list[str] = []

    def acquire(self, face: str = "") -> Permit:
        try:
            permit = self.inner.acquire()
        except Refused:
            self.asked.append(face + "refused")
            raise
        self.asked.append(face + ("trial" if permit.trial else "acquire"))
        return permit

    def record(self, permit: Permit, outcome: Outcome, face: str = "") -> Transition | None:
        self.asked.append(face + outcome.value)
        return self.inner.record(permit, outcome)

    def read(self) -> StoreView:
        return self.inner.read()

    def force(self, state: CircuitState) -> Transition | None:
        return self.inner.force(state)


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom("down")


def asked(breaker: CircuitBreaker) -> list[str]:
    store = breaker._store
    assert isinstance(store, AskedStore)
    return store.asked


def test_the_store_receives_the_rules_and_builds_from_them() -> None:
    breaker = CircuitBreaker(
        3, 7, failure_rate_threshold=40, sliding_window_size=10, minimum_calls=4, store=AskedStore
    )
    store = breaker._store
    assert isinstance(store, AskedStore)
    assert store.rules == BreakerRules(
        failure_threshold=3,
        recovery_timeout=7.0,
        failure_rate_threshold=40,
        sliding_window_size=10,
        minimum_calls=4,
    )


def test_sync_entry_points_ask_before_and_after_each_call() -> None:
    breaker = CircuitBreaker(
        failure_threshold=100, store=AskedStore, excluded_exceptions=(KeyError,)
    )
    breaker.call(lambda: None)
    with pytest.raises(Boom):
        breaker.call(boom)
    with breaker:
        pass
    with pytest.raises(KeyError), breaker:
        raise KeyError("not a failure")

    @breaker
    def decorated(fail: bool) -> int:
        if fail:
            raise Boom()
        return 1

    assert decorated(fail=False) == 1
    with pytest.raises(Boom):
        decorated(fail=True)
    assert asked(breaker) == [
        *("acquire", "success", "acquire", "failure"),
        *("acquire", "success", "acquire", "ignored"),
        *("acquire", "success", "acquire", "failure"),
    ]
    assert breaker.stats().calls == 6


def test_async_entry_points_ask_before_and_after_each_call() -> None:
    breaker = CircuitBreaker(failure_threshold=100, store=AskedStore)

    async def ok() -> int:
        return 1

    async def fail() -> int:
        raise Boom()

    decorated = breaker(fail)

    async def main() -> None:
        await breaker.call_async(ok)
        async with breaker:
            pass
        with pytest.raises(Boom):
            await decorated()

    asyncio.run(main())
    assert asked(breaker) == ["acquire", "success", "acquire", "success", "acquire", "failure"]


def test_an_open_store_refuses_every_entry_point_and_the_fallback_answers() -> None:
    breaker = CircuitBreaker(store=AskedStore, fallback=lambda *args: "fallback")
    breaker.open()
    assert breaker.call(lambda: "real") == "fallback"
    assert breaker(lambda: "real")() == "fallback"
    with pytest.raises(CircuitBreakerOpenError), breaker:
        pytest.fail("the body must not run while open")

    async def real() -> str:
        return "real"

    assert asyncio.run(breaker.call_async(real)) == "fallback"
    assert asked(breaker) == ["refused"] * 4
    assert breaker.stats().rejected == 4


def test_a_trial_permit_goes_back_to_the_store_that_issued_it() -> None:
    now = [0.0]
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=5, store=AskedStore, clock=lambda: now[0]
    )
    with pytest.raises(Boom):
        breaker.call(boom)
    now[0] = 5.0
    assert breaker.call(lambda: 1) == 1
    assert asked(breaker) == ["acquire", "failure", "trial", "success"]
    assert breaker.state is CircuitState.CLOSED


class AwaitedStore(AskedStore):
    """An `AskedStore` with the two steps also as coroutines, logged with an 'async ' prefix;
    each awaits once, as a store on a network client would."""

    async def acquire_async(self) -> Permit:
        await asyncio.sleep(0)
        return self.acquire("async ")

    async def record_async(self, permit: Permit, outcome: Outcome) -> Transition | None:
        await asyncio.sleep(0)
        return self.record(permit, outcome, "async ")


def test_async_entry_points_await_the_steps_of_a_store_that_has_them() -> None:
    now = [0.0]
    moves: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        failure_threshold=2,
        recovery_timeout=5,
        store=AwaitedStore,
        clock=lambda: now[0],
        on_state_change=lambda old, new: moves.append((old.value, new.value)),
    )

    async def ok() -> int:
        return 1

    @breaker
    async def fail() -> int:
        raise Boom()

    async def main() -> None:
        assert await breaker.call_async(ok) == 1
        with pytest.raises(Boom):
            async with breaker:
                raise Boom()
        with pytest.raises(Boom):
            await fail()  # the second failure opens the circuit
        with pytest.raises(CircuitBreakerOpenError) as refused:
            await breaker.call_async(ok)
        assert refused.value.retry_after == 5
        now[0] = 5.0
        async with breaker:  # the trial, which closes it again
            pass

    asyncio.run(main())
    assert asked(breaker) == [
        *("async acquire", "async success", "async acquire", "async failure"),
        *("async acquire", "async failure", "async refused", "async trial", "async success"),
    ]
    assert moves == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    stats = breaker.stats()
    assert (stats.successes, stats.failures, stats.rejected) == (2, 2, 1)
    assert stats.state is CircuitState.CLOSED


def test_sync_entry_points_of_a_store_with_async_steps_take_its_sync_ones() -> None:
    breaker = CircuitBreaker(failure_threshold=1, store=AwaitedStore)
    assert breaker.call(lambda: 2) == 2
    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker.state is CircuitState.OPEN
    assert asked(breaker) == ["acquire", "success", "acquire", "failure"]
