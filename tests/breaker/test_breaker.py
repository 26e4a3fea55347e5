"""Behaviour of `ishan_tools.breaker`, through the seed's import path where the seed has it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from agent_circuit_breaker import (
    CircuitBreaker,
    CircuitBreakerOpenError,
    CircuitState,
    circuit_breaker,
)
from ishan_tools.errors import IshanError


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom("down")


def fail_n(breaker: CircuitBreaker, n: int, exc: type[Exception] = Boom) -> None:
    def raising() -> None:
        raise exc("x")

    for _ in range(n):
        with pytest.raises(exc):
            breaker.call(raising)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- the seed's documented usage, as written ---------------------------------------------


def test_seed_decorator_example_runs() -> None:
    response = "hello"

    @circuit_breaker(failure_threshold=5, recovery_timeout=60)
    def call_llm(prompt: str) -> str:
        return response

    assert call_llm("hi") == "hello"
    assert call_llm.breaker.name.endswith("call_llm")  # type: ignore[attr-defined]


def test_seed_async_decorator_example_runs() -> None:
    async def some_async_client(prompt: str) -> str:
        await asyncio.sleep(0)
        return prompt.upper()

    @circuit_breaker(failure_threshold=3, recovery_timeout=30)
    async def async_call_llm(prompt: str) -> str:
        return await some_async_client(prompt)

    assert asyncio.run(async_call_llm("hi")) == "HI"


def test_seed_context_manager_and_call_examples_run() -> None:
    class Agent:
        def run(self, task: str) -> str:
            return f"done {task}"

        async def run_async(self, task: str) -> str:
            return f"async {task}"

    agent, task = Agent(), "t"
    breaker = CircuitBreaker(failure_threshold=5, recovery_timeout=60)
    with breaker:
        result = agent.run(task)
    assert result == "done t"

    async def main() -> str:
        async with breaker:
            return await agent.run_async(task)

    assert asyncio.run(main()) == "async t"

    def agent_function(a: int, b: int) -> int:
        return a + b

    try:
        value: int | str = breaker.call(agent_function, 1, 2)
    except CircuitBreakerOpenError:
        value = "Service unavailable"
    assert value == 3
    breaker.open()
    try:
        value = breaker.call(agent_function, 1, 2)
    except CircuitBreakerOpenError:
        value = "Service unavailable"
    assert value == "Service unavailable"


# -- consecutive mode ------------------------------------------------------------------


def test_opens_exactly_at_threshold(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=10, clock=clock)
    fail_n(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 2
    fail_n(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    calls = []
    with pytest.raises(CircuitBreakerOpenError):
        breaker.call(calls.append, 1)
    assert calls == []


def test_success_resets_consecutive_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)
    fail_n(breaker, 2)
    assert breaker.call(lambda: "ok") == "ok"
    assert breaker.failure_count == 0
    fail_n(breaker, 2)
    assert breaker.state is CircuitState.CLOSED


def test_open_error_carries_name_and_retry_after(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=30, name="llm", clock=clock)
    fail_n(breaker, 1)
    clock.advance(12)
    with pytest.raises(CircuitBreakerOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.name == "llm"
    assert info.value.retry_after == pytest.approx(18)
    assert isinstance(info.value, IshanError)
    assert "llm" in str(info.value)


def test_recovery_timeout_edge_and_half_open_trial(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=30, clock=clock)
    fail_n(breaker, 1)
    clock.advance(29.999)
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.001)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(lambda: 7) == 7
    assert breaker.state is CircuitState.CLOSED


def test_half_open_failure_reopens_with_fresh_timeout(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=30, clock=clock)
    fail_n(breaker, 1)
    clock.advance(30)
    fail_n(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.retry_after == pytest.approx(30)


def test_success_threshold_needs_several_trials(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=5, success_threshold=3, clock=clock
    )
    fail_n(breaker, 1)
    clock.advance(5)
    breaker.call(lambda: None)
    breaker.call(lambda: None)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.call(lambda: None)
    assert breaker.state is CircuitState.CLOSED


# -- time-window mode ------------------------------------------------------------------


def test_failure_window_counts_only_recent_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, failure_window=10, clock=clock)
    fail_n(breaker, 2)
    breaker.call(lambda: None)  # a success does not reset the window
    clock.advance(9.999)
    fail_n(breaker, 1)
    assert breaker.state is CircuitState.OPEN


def test_failure_window_expiry_edge(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, failure_window=10, clock=clock)
    fail_n(breaker, 2)
    clock.advance(10)  # exactly the window: those two no longer count
    fail_n(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 2
    fail_n(breaker, 1)
    assert breaker.state is CircuitState.OPEN


# -- failure-rate mode -----------------------------------------------------------------


def test_failure_rate_waits_for_minimum_calls(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        failure_rate_threshold=50, sliding_window_size=10, minimum_calls=4, clock=clock
    )
    fail_n(breaker, 3)
    assert breaker.state is CircuitState.CLOSED
    fail_n(breaker, 1)
    assert breaker.state is CircuitState.OPEN


def test_failure_rate_threshold_edge(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        failure_rate_threshold=50, sliding_window_size=4, minimum_calls=4, clock=clock
    )
    for _ in range(3):
        breaker.call(lambda: None)
    fail_n(breaker, 1)  # 1 of 4 = 25%
    assert breaker.state is CircuitState.CLOSED
    fail_n(breaker, 1)  # window now s,s,f,f = 50%
    assert breaker.state is CircuitState.OPEN


def test_failure_rate_window_slides(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        failure_rate_threshold=60, sliding_window_size=5, minimum_calls=5, clock=clock
    )
    fail_n(breaker, 2)
    for _ in range(5):
        breaker.call(lambda: None)  # the two failures slide out
    fail_n(breaker, 2)  # 2 of 5 = 40%
    assert breaker.state is CircuitState.CLOSED
    fail_n(breaker, 1)  # 3 of 5 = 60%
    assert breaker.state is CircuitState.OPEN


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(failure_window=5, failure_rate_threshold=50)
    with pytest.raises(ValueError):
        CircuitBreaker(failure_rate_threshold=150)


# -- what counts -----------------------------------------------------------------------


def test_excluded_exceptions_never_count_and_do_not_reset(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, excluded_exceptions=(KeyError,), clock=clock)
    fail_n(breaker, 1)
    fail_n(breaker, 3, KeyError)
    assert breaker.failure_count == 1
    fail_n(breaker, 1)
    assert breaker.state is CircuitState.OPEN


def test_predicate_filters_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        failure_threshold=2,
        failure_predicate=lambda exc: "fatal" in str(exc),
        clock=clock,
    )

    def raise_msg(msg: str) -> None:
        raise Boom(msg)

    for _ in range(5):
        with pytest.raises(Boom):
            breaker.call(raise_msg, "minor")
    assert breaker.state is CircuitState.CLOSED
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(raise_msg, "fatal")
    assert breaker.state is CircuitState.OPEN


def test_excluded_checked_before_predicate(clock: FakeClock) -> None:
    seen: list[BaseException] = []

    def predicate(exc: BaseException) -> bool:
        seen.append(exc)
        return True

    breaker = CircuitBreaker(
        failure_threshold=1,
        excluded_exceptions=(KeyError,),
        failure_predicate=predicate,
        clock=clock,
    )
    fail_n(breaker, 1, KeyError)
    assert seen == []
    assert breaker.state is CircuitState.CLOSED
    fail_n(breaker, 1, ValueError)
    assert len(seen) == 1
    assert breaker.state is CircuitState.OPEN


def test_keyboard_interrupt_is_not_a_failure(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=clock)

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupt)
    assert breaker.state is CircuitState.CLOSED


# -- fallback --------------------------------------------------------------------------


def test_fallback_receives_the_calls_arguments(clock: FakeClock) -> None:
    received: list[tuple[Any, ...]] = []

    def fallback(*args: Any, **kwargs: Any) -> str:
        received.append((args, kwargs))
        return "cached"

    @circuit_breaker(failure_threshold=1, recovery_timeout=60, fallback=fallback, clock=clock)
    def fetch(url: str, *, timeout: int) -> str:
        raise Boom(url)

    with pytest.raises(Boom):
        fetch("a", timeout=1)
    assert fetch("b", timeout=2) == "cached"
    assert received == [(("b",), {"timeout": 2})]


def test_async_fallback_is_awaited(clock: FakeClock) -> None:
    async def fallback(x: int) -> int:
        return -x

    @circuit_breaker(failure_threshold=1, fallback=fallback, clock=clock)
    async def compute(x: int) -> int:
        raise Boom()

    async def main() -> int:
        with pytest.raises(Boom):
            await compute(1)
        return await compute(5)

    assert asyncio.run(main()) == -5


# -- callbacks -------------------------------------------------------------------------


def recorder(events: list[str]) -> dict[str, Callable[..., None]]:
    return {
        "on_state_change": lambda old, new: events.append(f"change {old.name}->{new.name}"),
        "on_failure": lambda: events.append("failure"),
        "on_success": lambda: events.append("success"),
        "on_open": lambda: events.append("open"),
        "on_close": lambda: events.append("close"),
        "on_half_open": lambda: events.append("half_open"),
    }


def test_callback_order_on_every_transition(clock: FakeClock) -> None:
    events: list[str] = []
    breaker = CircuitBreaker(
        failure_threshold=2, recovery_timeout=10, clock=clock, **recorder(events)
    )
    fail_n(breaker, 2)
    assert events == ["failure", "failure", "change CLOSED->OPEN", "open"]
    events.clear()
    clock.advance(10)
    breaker.call(lambda: None)
    assert events == [
        "change OPEN->HALF_OPEN",
        "half_open",
        "success",
        "change HALF_OPEN->CLOSED",
        "close",
    ]
    events.clear()
    breaker.open()
    clock.advance(10)
    fail_n(breaker, 1)
    assert events == [
        "change CLOSED->OPEN",
        "open",
        "change OPEN->HALF_OPEN",
        "half_open",
        "failure",
        "change HALF_OPEN->OPEN",
        "open",
    ]


def test_callbacks_receive_state_members(clock: FakeClock) -> None:
    seen: list[tuple[CircuitState, CircuitState]] = []
    breaker = CircuitBreaker(failure_threshold=1, clock=clock)
    breaker.on_state_change = lambda old, new: seen.append((old, new))
    fail_n(breaker, 1)
    assert seen == [(CircuitState.CLOSED, CircuitState.OPEN)]


def test_raising_callback_does_not_break_the_breaker(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*_: object) -> None:
        raise RuntimeError("callback bug")

    breaker = CircuitBreaker(
        failure_threshold=1,
        recovery_timeout=1,
        clock=clock,
        on_state_change=explode,
        on_open=explode,
        on_failure=explode,
        on_success=explode,
    )
    assert breaker.call(lambda: 1) == 1
    fail_n(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    clock.advance(1)
    assert breaker.call(lambda: 2) == 2
    assert breaker.state is CircuitState.CLOSED
    assert "callback bug" in caplog.text


# -- manual control and stats ----------------------------------------------------------


def test_manual_open_close_reset_and_stats(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=20, name="db", clock=clock)
    breaker.call(lambda: None)
    fail_n(breaker, 2)
    stats = breaker.stats()
    assert (stats.name, stats.state, stats.calls, stats.successes, stats.failures) == (
        "db",
        CircuitState.CLOSED,
        3,
        1,
        2,
    )
    assert stats.current_failures == 2
    assert stats.last_failure == "Boom: x"
    breaker.open()
    with pytest.raises(CircuitBreakerOpenError):
        breaker.call(lambda: None)
    stats = breaker.stats()
    assert stats.state is CircuitState.OPEN
    assert stats.opened_at == clock.now
    assert stats.rejected == 1
    assert stats.retry_after == pytest.approx(20)
    breaker.close()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 0
    assert breaker.stats().failures == 2
    breaker.reset()
    stats = breaker.stats()
    assert (stats.calls, stats.successes, stats.failures, stats.rejected) == (0, 0, 0, 0)
    assert stats.last_failure is None


def test_decorator_uses_qualified_name_and_distinct_breakers() -> None:
    decorate = circuit_breaker(failure_threshold=1)

    @decorate
    def first() -> None:
        raise Boom()

    @decorate
    def second() -> int:
        return 2

    with pytest.raises(Boom):
        first()
    assert second() == 2
    assert first.breaker is not second.breaker  # type: ignore[attr-defined]
    assert second.breaker.name.endswith("second")  # type: ignore[attr-defined]
    with pytest.raises(CircuitBreakerOpenError) as info:
        first()
    assert info.value.name.endswith("first")


def test_context_manager_counts_failures_and_rejects(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=5, clock=clock)
    for _ in range(2):
        with pytest.raises(Boom), breaker:
            fail()
    with pytest.raises(CircuitBreakerOpenError), breaker:
        pytest.fail("the body must not run while open")
    clock.advance(5)
    with breaker:
        pass
    assert breaker.state is CircuitState.CLOSED


def test_breaker_instance_as_decorator(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=clock)

    @breaker
    def double(x: int) -> int:
        return 2 * x

    assert double(4) == 8
    breaker.open()
    with pytest.raises(CircuitBreakerOpenError):
        double(4)


# -- concurrency -----------------------------------------------------------------------


def test_half_open_admits_one_trial_among_50_threads(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1, clock=clock)
    fail_n(breaker, 1)
    clock.advance(1)
    release = threading.Event()
    started = threading.Barrier(50)
    outcomes: list[str] = []
    lock = threading.Lock()

    def trial() -> str:
        release.wait(5)
        return "ran"

    def worker() -> None:
        started.wait()
        try:
            result = breaker.call(trial)
        except CircuitBreakerOpenError:
            result = "rejected"
        with lock:
            outcomes.append(result)
        if result == "rejected" and outcomes.count("rejected") == 49:
            release.set()

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["ran"] + ["rejected"] * 49
    assert breaker.state is CircuitState.CLOSED


def half_open_breaker(clock: FakeClock, **options: Any) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1, clock=clock, **options)
    breaker.open()
    clock.advance(1)
    return breaker


def race_tasks(breaker: CircuitBreaker, tasks: int, *, context_manager: bool) -> list[str]:
    """Start `tasks` asyncio tasks through a half-open breaker; each trial waits for the rest."""

    async def main() -> list[str]:
        release = asyncio.Event()

        async def trial() -> str:
            await release.wait()
            return "ran"

        async def task() -> str:
            try:
                if context_manager:
                    async with breaker:
                        return await trial()
                return await breaker.call_async(trial)
            except CircuitBreakerOpenError:
                return "rejected"

        running = [asyncio.create_task(task()) for _ in range(tasks)]
        await asyncio.sleep(0.05)
        release.set()
        return sorted(await asyncio.gather(*running))

    return asyncio.run(main())


def test_half_open_admits_one_trial_among_50_tasks(clock: FakeClock) -> None:
    breaker = half_open_breaker(clock)
    assert race_tasks(breaker, 50, context_manager=False) == ["ran"] + ["rejected"] * 49
    assert breaker.state is CircuitState.CLOSED


def test_half_open_async_context_manager_single_trial(clock: FakeClock) -> None:
    breaker = half_open_breaker(clock)
    assert race_tasks(breaker, 50, context_manager=True) == ["ran"] + ["rejected"] * 49
    assert breaker.state is CircuitState.CLOSED


def test_half_open_max_calls_admits_that_many(clock: FakeClock) -> None:
    breaker = half_open_breaker(clock, half_open_max_calls=3)
    assert race_tasks(breaker, 10, context_manager=False) == ["ran"] * 3 + ["rejected"] * 7


def test_cancelled_trial_frees_its_slot(clock: FakeClock) -> None:
    breaker = half_open_breaker(clock)

    async def main() -> int:
        async def hang() -> int:
            await asyncio.sleep(60)
            return 0

        async def quick() -> int:
            return 1

        trial = asyncio.create_task(breaker.call_async(hang))
        await asyncio.sleep(0.01)
        trial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await trial
        return await breaker.call_async(quick)

    assert asyncio.run(main()) == 1
    assert breaker.state is CircuitState.CLOSED


def test_threads_hammering_closed_breaker_keep_exact_counts() -> None:
    breaker = CircuitBreaker(failure_threshold=10**9)

    def worker() -> None:
        for i in range(2000):
            if i % 10 == 0:
                with pytest.raises(Boom):
                    breaker.call(fail)
            else:
                breaker.call(lambda: None)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = breaker.stats()
    assert (stats.successes, stats.failures, stats.calls) == (14400, 1600, 16000)
