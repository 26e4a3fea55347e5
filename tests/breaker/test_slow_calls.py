"""Slow calls: `slow_call_duration` and `slow_call_rate_threshold`, in every counting mode, in
half-open trials, through every entry point, and in the shared Redis store.

Time is a clock the test moves: a "call" advances it by its duration, so no test sleeps.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from ishan_tools.breaker import CircuitBreaker, CircuitBreakerOpenError, CircuitState
from ishan_tools.stores.breaker import RedisBreakerStore
from tests.harness.redis_server import RedisServer

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Boom(Exception):
    pass


class Excluded(Exception):
    pass


def taking(clock: FakeClock, seconds: float, *, fail: type[Exception] | None = None) -> str:
    """A call that takes `seconds` on `clock`, then returns or raises `fail`."""
    clock.now += seconds
    if fail is not None:
        raise fail("down")
    return "done"


def run(breaker: CircuitBreaker, clock: FakeClock, seconds: float, fail: bool = False) -> None:
    if fail:
        with pytest.raises(Boom):
            breaker.call(taking, clock, seconds, fail=Boom)
    else:
        assert breaker.call(taking, clock, seconds) == "done"


# Each counting mode, with failure rules that the calls below never reach by themselves.
MODES: dict[str, dict[str, Any]] = {
    "consecutive": {"failure_threshold": 5},
    "failure_window": {"failure_threshold": 5, "failure_window": 60.0},
    "failure_rate": {"failure_rate_threshold": 100.0},
}


def breaker_for(mode: str, clock: FakeClock, **options: Any) -> CircuitBreaker:
    settings: dict[str, Any] = {
        **MODES[mode],
        "recovery_timeout": 30,
        "clock": clock,
        "slow_call_duration": 1.0,
        **options,
    }
    return CircuitBreaker(**settings)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- closed: the slow share of the last calls opens the circuit, in every mode -----------


@pytest.mark.parametrize("mode", MODES)
def test_the_slow_share_opens_once_minimum_calls_are_in(mode: str, clock: FakeClock) -> None:
    moves: list[tuple[str, str]] = []
    breaker = breaker_for(
        mode,
        clock,
        slow_call_rate_threshold=0.5,
        sliding_window_size=10,
        minimum_calls=4,
        on_state_change=lambda old, new: moves.append((old.value, new.value)),
    )
    run(breaker, clock, 5.0)
    run(breaker, clock, 5.0)
    run(breaker, clock, 0.2)  # 2 slow of 3: above the share, but fewer than minimum_calls
    assert breaker.state is CLOSED
    stats = breaker.stats()
    assert (stats.slow_calls, stats.current_slow_calls, stats.window_calls) == (2, 2, 3)
    assert stats.slow_call_rate == pytest.approx(2 / 3)
    run(breaker, clock, 0.2)  # 2 of 4: at the threshold, minimum reached
    assert breaker.state is OPEN
    assert moves == [("closed", "open")]
    with pytest.raises(CircuitBreakerOpenError):
        breaker.call(taking, clock, 0.1)
    assert breaker.stats().successes == 4


@pytest.mark.parametrize("mode", MODES)
def test_below_the_threshold_the_circuit_stays_closed(mode: str, clock: FakeClock) -> None:
    breaker = breaker_for(
        mode, clock, slow_call_rate_threshold=0.3, sliding_window_size=10, minimum_calls=10
    )
    for seconds in [2.0, 0.1, 0.1, 2.0, 0.1, 0.1, 0.1, 0.1, 0.1]:
        run(breaker, clock, seconds)
    run(breaker, clock, 0.1)  # ten calls, 2 slow: 20 % < 30 %
    assert breaker.state is CLOSED
    assert breaker.stats().slow_call_rate == pytest.approx(0.2)
    run(breaker, clock, 2.0)  # the oldest (slow) call leaves the window: still 2 of 10
    assert breaker.state is CLOSED
    run(breaker, clock, 2.0)  # 3 of 10
    assert breaker.state is OPEN


@pytest.mark.parametrize("mode", MODES)
def test_slow_calls_are_counted_over_the_last_window_of_calls(mode: str, clock: FakeClock) -> None:
    breaker = breaker_for(
        mode, clock, slow_call_rate_threshold=0.75, sliding_window_size=4, minimum_calls=4
    )
    for seconds in [3.0, 3.0, 0.5, 0.5, 0.5]:
        run(breaker, clock, seconds)
    assert breaker.stats().current_slow_calls == 1  # the first slow call left the window
    run(breaker, clock, 3.0)  # fast, fast, fast, slow
    run(breaker, clock, 3.0)  # fast, fast, slow, slow
    assert breaker.state is CLOSED  # 4 slow of 7 calls overall, but 2 of the last 4
    run(breaker, clock, 3.0)  # fast, slow, slow, slow: 75 %
    assert breaker.state is OPEN
    assert breaker.stats().slow_calls == 5


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_failure_counts_as_a_failure_and_as_a_slow_call(mode: str, clock: FakeClock) -> None:
    breaker = breaker_for(
        mode, clock, slow_call_rate_threshold=1.0, sliding_window_size=2, minimum_calls=2
    )
    run(breaker, clock, 4.0, fail=True)
    stats = breaker.stats()
    assert (stats.failures, stats.current_failures, stats.slow_calls) == (1, 1, 1)
    assert (stats.current_slow_calls, stats.window_calls) == (1, 1)
    run(breaker, clock, 4.0)  # a slow success: 2 slow of 2, though one call failed
    assert breaker.state is OPEN
    assert breaker.stats().slow_calls == 2


@pytest.mark.parametrize("mode", MODES)
def test_a_fast_failure_is_a_call_that_was_not_slow(mode: str, clock: FakeClock) -> None:
    breaker = breaker_for(
        mode, clock, slow_call_rate_threshold=0.6, sliding_window_size=5, minimum_calls=5
    )
    run(breaker, clock, 0.1, fail=True)
    run(breaker, clock, 0.1, fail=True)
    for _ in range(3):
        run(breaker, clock, 2.0)
    assert breaker.state is OPEN  # 3 slow of 5 calls, failures included
    assert breaker.stats().failures == 2


def test_only_the_duration_opens_on_every_call_slow_by_default(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        clock=clock, slow_call_duration=1.0, sliding_window_size=3, minimum_calls=3
    )
    assert breaker.slow_call_rate_threshold == 1.0
    run(breaker, clock, 1.0)  # exactly the duration is not slower than it
    run(breaker, clock, 1.5)
    run(breaker, clock, 1.5)
    assert breaker.state is CLOSED
    run(breaker, clock, 1.5)  # the last 3 calls all slow
    assert breaker.state is OPEN


def test_an_ignored_exception_is_no_call_even_when_slow(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        clock=clock,
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
        sliding_window_size=2,
        minimum_calls=2,
        excluded_exceptions=(Excluded,),
    )
    run(breaker, clock, 0.1)
    for _ in range(3):
        with pytest.raises(Excluded):
            breaker.call(taking, clock, 5.0, fail=Excluded)
    stats = breaker.stats()
    assert (stats.state, stats.ignored, stats.slow_calls, stats.window_calls) == (CLOSED, 3, 0, 1)


def test_without_the_options_calls_are_not_timed(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock, sliding_window_size=2, minimum_calls=2)
    for _ in range(5):
        run(breaker, clock, 100.0)
    stats = breaker.stats()
    assert (stats.state, stats.slow_calls, stats.window_calls) == (CLOSED, 0, 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"slow_call_duration": 0}, "slow_call_duration must be a positive number of seconds"),
        ({"slow_call_duration": -1.5}, "slow_call_duration must be a positive number"),
        ({"slow_call_duration": float("nan")}, "slow_call_duration must be a positive"),
        ({"slow_call_duration": float("inf")}, "slow_call_duration must be a positive"),
        ({"slow_call_duration": 1, "slow_call_rate_threshold": 50}, r"fraction in \(0, 1\]"),
        ({"slow_call_duration": 1, "slow_call_rate_threshold": 0}, r"fraction in \(0, 1\]"),
        ({"slow_call_rate_threshold": 0.5}, "slow_call_rate_threshold needs slow_call_duration"),
        ({"slow_call_duration": 1, "sliding_window_size": 0}, "sliding_window_size"),
    ],
)
def test_bad_options_are_refused_with_a_clear_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**options)


# -- half-open: slow trials --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_trial_reopens_the_circuit(mode: str, clock: FakeClock) -> None:
    moves: list[tuple[str, str]] = []
    breaker = breaker_for(
        mode,
        clock,
        slow_call_rate_threshold=0.5,
        on_state_change=lambda old, new: moves.append((old.value, new.value)),
    )
    breaker.open()
    clock.now += 30
    run(breaker, clock, 2.0)  # the trial succeeds, but slowly: its answer still comes back
    assert breaker.state is OPEN
    assert breaker.stats().retry_after == 30
    clock.now += 30
    run(breaker, clock, 0.5)
    assert breaker.state is CLOSED
    assert moves == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert breaker.stats().current_slow_calls == 0  # closing starts a fresh window


def test_slow_trials_reopen_at_the_threshold_share_of_the_trials(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        clock=clock,
        recovery_timeout=30,
        success_threshold=4,
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
    )
    breaker.open()
    clock.now += 30
    for seconds in [0.1, 2.0, 0.1]:
        run(breaker, clock, seconds)
        assert breaker.state is HALF_OPEN  # one slow trial of the four that decide
    run(breaker, clock, 2.0)  # the second: half of them
    assert breaker.state is OPEN
    clock.now += 30
    for seconds in [0.1, 0.1, 0.1, 2.0]:
        run(breaker, clock, seconds)
    assert breaker.state is CLOSED  # one slow trial in four, below half


def test_a_slow_failing_trial_reopens_as_a_failure(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        clock=clock, recovery_timeout=30, slow_call_duration=1.0, success_threshold=3
    )
    breaker.open()
    clock.now += 30
    run(breaker, clock, 3.0, fail=True)
    stats = breaker.stats()
    assert (stats.state, stats.failures, stats.slow_calls) == (OPEN, 1, 1)


# -- every entry point times its calls ---------------------------------------------------


def test_the_decorator_and_the_context_manager_count_slow_calls(clock: FakeClock) -> None:
    options: dict[str, Any] = {
        "clock": clock,
        "slow_call_duration": 1.0,
        "slow_call_rate_threshold": 1.0,
        "sliding_window_size": 2,
        "minimum_calls": 2,
    }
    breaker = CircuitBreaker(**options)

    @breaker
    def decorated(seconds: float) -> str:
        return taking(clock, seconds)

    assert decorated(3.0) == "done"
    with pytest.raises(Boom), breaker:
        taking(clock, 3.0, fail=Boom)  # slow, and a failure
    assert breaker.state is OPEN
    assert breaker.stats().slow_calls == 2

    other = CircuitBreaker(**options)
    with other:
        clock.now += 0.5
    with other, other:  # nested: each exit times its own entry
        clock.now += 2.0
    assert (other.stats().current_slow_calls, other.stats().window_calls) == (2, 2)
    assert other.state is OPEN


def test_async_calls_count_slow_calls(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        clock=clock,
        recovery_timeout=30,
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
        sliding_window_size=4,
        minimum_calls=4,
    )

    async def answer(seconds: float) -> str:
        await asyncio.sleep(0)
        return taking(clock, seconds)

    @breaker
    async def decorated(seconds: float) -> str:
        return await answer(seconds)

    async def main() -> None:
        assert await breaker.call_async(answer, 0.1) == "done"
        assert await decorated(2.0) == "done"
        async with breaker:
            await answer(0.1)
        assert breaker.state is CLOSED
        with pytest.raises(Boom):
            async with breaker:
                await answer(2.0)
                raise Boom("late, then broken")
        assert breaker.state is OPEN  # 2 slow of 4
        clock.now += 30
        assert await decorated(5.0) == "done"  # a slow trial
        assert breaker.state is OPEN

    asyncio.run(main())
    stats = breaker.stats()
    assert (stats.slow_calls, stats.successes, stats.failures) == (3, 4, 1)


# -- the shared Redis store --------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for this module, persistence off."""
    server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    try:
        yield server.url()
    finally:
        server.stop()


def shared(url: str, key: str, clock: FakeClock, **options: Any) -> CircuitBreaker:
    """A breaker over the store at `key`, with a client of its own (as a process has)."""
    client = redis.Redis.from_url(url)
    settings: dict[str, Any] = {"recovery_timeout": 60, "clock": clock, **options}
    factory = functools.partial(RedisBreakerStore, key=key, client=client, trial_ttl=5)
    return CircuitBreaker(store=factory, **settings)


def test_two_breakers_over_one_redis_store_count_slow_calls_together(
    redis_url: str, clock: FakeClock
) -> None:
    redis.Redis.from_url(redis_url).delete("slow:a", "slow:a:trials", "slow:a:calls")
    options = {
        "slow_call_duration": 1.0,
        "slow_call_rate_threshold": 0.5,
        "sliding_window_size": 4,
        "minimum_calls": 4,
        "failure_threshold": 3,
    }
    moves: list[tuple[str, str, str]] = []
    one, two = (
        shared(
            redis_url,
            "slow:a",
            clock,
            name=name,
            on_state_change=lambda old, new, name=name: moves.append((name, old.value, new.value)),
            **options,
        )
        for name in ("one", "two")
    )
    run(one, clock, 3.0)
    run(two, clock, 0.1, fail=True)  # a fast failure is a call, not a slow one
    run(one, clock, 0.1)
    assert one.state is CLOSED
    stats = two.stats()  # both processes' calls are in the one window
    assert (stats.current_slow_calls, stats.window_calls) == (1, 3)
    assert (stats.slow_calls, stats.failures) == (0, 1)  # the totals stay this breaker's
    run(two, clock, 5.0)  # 2 slow of 4 calls: opens, in the same script
    assert moves == [("two", "closed", "open")]
    with pytest.raises(CircuitBreakerOpenError):
        one.call(taking, clock, 0.1)
    assert one.state is OPEN


def test_a_slow_trial_reopens_the_redis_store(redis_url: str, clock: FakeClock) -> None:
    redis.Redis.from_url(redis_url).delete("slow:b", "slow:b:trials", "slow:b:calls")
    moves: list[tuple[str, str]] = []
    breaker = shared(
        redis_url,
        "slow:b",
        clock,
        recovery_timeout=0,  # Redis keeps the time: the next call is the trial
        success_threshold=2,
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
        on_state_change=lambda old, new: moves.append((old.value, new.value)),
    )
    breaker.open()
    run(breaker, clock, 0.1)  # one fast trial of the two that decide
    run(breaker, clock, 2.0)  # one slow: half of them
    assert moves == [("closed", "open"), ("open", "half_open"), ("half_open", "open")]
    moves.clear()
    run(breaker, clock, 0.1)
    run(breaker, clock, 0.1)
    assert moves == [("open", "half_open"), ("half_open", "closed")]
    assert breaker.stats().window_calls == 0  # closing empties the shared window


def test_async_breakers_over_one_redis_store_count_slow_calls(
    redis_url: str, clock: FakeClock
) -> None:
    redis.Redis.from_url(redis_url).delete("slow:c", "slow:c:trials", "slow:c:calls")

    async def answer(seconds: float) -> str:
        await asyncio.sleep(0)
        return taking(clock, seconds)

    async def main() -> None:
        clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(2)]
        breakers = [
            CircuitBreaker(
                clock=clock,
                slow_call_duration=1.0,
                slow_call_rate_threshold=1.0,
                sliding_window_size=2,
                minimum_calls=2,
                store=functools.partial(
                    RedisBreakerStore, key="slow:c", async_client=client, trial_ttl=5
                ),
            )
            for client in clients
        ]
        await breakers[0].call_async(answer, 2.0)
        async with breakers[1]:  # the second slow call, in another "process", opens it
            await answer(2.0)
        for breaker in breakers:
            with pytest.raises(CircuitBreakerOpenError):
                await breaker.call_async(answer, 0.1)
        for client in clients:
            await client.aclose()

    asyncio.run(main())
