"""Hypothesis drives random call outcomes and clock moves against a reference model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ishan_tools.breaker import CircuitBreaker, CircuitBreakerOpenError, CircuitState
from ishan_tools.breaker.store import MemoryStore, StoreFactory

from .test_store import AskedStore


class Failure(Exception):
    pass


class Ignored(Exception):
    pass


@dataclass
class Model:
    """The state machine written as plainly as possible, one call at a time."""

    threshold: int
    timeout: float
    window: float | None
    successes_to_close: int
    state: str = "closed"
    failures: list[float] = field(default_factory=list)
    opened_at: float = 0.0
    trial_successes: int = 0

    def refresh(self, now: float) -> None:
        if self.state == "open" and now - self.opened_at >= self.timeout:
            self.state = "half_open"
            self.trial_successes = 0

    def open(self, now: float) -> None:
        self.state, self.opened_at, self.failures = "open", now, []

    def close(self) -> None:
        self.state, self.failures = "closed", []

    def call(self, outcome: str, now: float) -> str:
        """Return 'rejected' or 'ran', updating the model."""
        self.refresh(now)
        if self.state == "open":
            return "rejected"
        if outcome == "ignored":
            return "ran"
        if self.state == "half_open":
            if outcome == "failure":
                self.open(now)
            else:
                self.trial_successes += 1
                if self.trial_successes >= self.successes_to_close:
                    self.close()
            return "ran"
        if outcome == "success":
            if self.window is None:
                self.failures = []
            return "ran"
        self.failures.append(now)
        if self.window is not None:
            window = self.window
            self.failures = [t for t in self.failures if now - t < window]
        if len(self.failures) >= self.threshold:
            self.open(now)
        return "ran"


class BreakerMachine(RuleBasedStateMachine):
    store: ClassVar[StoreFactory] = MemoryStore

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    @initialize(
        threshold=st.integers(1, 4),
        timeout=st.sampled_from([1.0, 5.0, 30.0]),
        window=st.none() | st.sampled_from([2.0, 10.0]),
        successes_to_close=st.integers(1, 3),
    )
    def setup(
        self, threshold: int, timeout: float, window: float | None, successes_to_close: int
    ) -> None:
        self.model = Model(threshold, timeout, window, successes_to_close)
        self.breaker = CircuitBreaker(
            failure_threshold=threshold,
            recovery_timeout=timeout,
            failure_window=window,
            success_threshold=successes_to_close,
            excluded_exceptions=(Ignored,),
            clock=lambda: self.now,
            store=self.store,
        )

    @rule(outcome=st.sampled_from(["success", "failure", "ignored"]))
    def call(self, outcome: str) -> None:
        def target() -> str:
            if outcome == "failure":
                raise Failure()
            if outcome == "ignored":
                raise Ignored()
            return "ok"

        expected = self.model.call(outcome, self.now)
        try:
            self.breaker.call(target)
            actual = "ran"
        except CircuitBreakerOpenError:
            actual = "rejected"
        except (Failure, Ignored):
            actual = "ran"
        assert actual == expected

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 4.9, 5.0, 10.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def manual_open(self) -> None:
        self.breaker.open()
        self.model.open(self.now)

    @rule()
    def manual_close(self) -> None:
        self.breaker.close()
        self.model.close()

    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "model"):
            return
        self.model.refresh(self.now)
        assert self.breaker.state is CircuitState(self.model.state)


class AskedStoreMachine(BreakerMachine):
    """The same model with a store that is asked at every call, as a shared one is."""

    store = AskedStore


TestBreakerMachine = BreakerMachine.TestCase
TestBreakerMachine.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestAskedStoreMachine = AskedStoreMachine.TestCase
TestAskedStoreMachine.settings = TestBreakerMachine.settings
