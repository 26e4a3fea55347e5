"""How a closed circuit counts failures: consecutive, in a time window, or as a rate.

Each counter is used under the breaker's lock, except `success()` of the rate counter, which
the lock-free success path calls (a `deque.append` is atomic under the GIL).
"""

from __future__ import annotations

from collections import deque
from typing import Protocol


class FailureCounter(Protocol):
    """Counts failures of a closed circuit and says when it should open."""

    def failure(self, now: float) -> bool:
        """Record a failure at `now`; True when the circuit should open."""

    def success(self) -> None:
        """Record a success."""

    def current(self, now: float) -> int:
        """Failures that count towards opening at `now`."""

    def clear(self) -> None:
        """Forget everything (the circuit closed)."""

    @property
    def wants_successes(self) -> bool:
        """Whether a success changes anything, so the fast path must report it."""


class ConsecutiveCounter:
    """`threshold` failures in a row; any success starts again."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.count = 0

    def failure(self, now: float) -> bool:
        self.count += 1
        return self.count >= self.threshold

    def success(self) -> None:
        self.count = 0

    def current(self, now: float) -> int:
        return self.count

    def clear(self) -> None:
        self.count = 0

    @property
    def wants_successes(self) -> bool:
        return self.count > 0


class WindowCounter:
    """`threshold` failures within the last `window` seconds; successes change nothing.

    A failure exactly `window` seconds old no longer counts.
    """

    wants_successes = False

    def __init__(self, threshold: int, window: float) -> None:
        self.threshold = threshold
        self.window = window
        self.times: deque[float] = deque()

    def failure(self, now: float) -> bool:
        self.times.append(now)
        return self.current(now) >= self.threshold

    def success(self) -> None:
        pass

    def current(self, now: float) -> int:
        horizon = now - self.window
        while self.times and self.times[0] <= horizon:
            self.times.popleft()
        return len(self.times)

    def clear(self) -> None:
        self.times.clear()


class RateCounter:
    """Opens when `percent` or more of the last `size` calls failed, once `minimum` were seen."""

    wants_successes = True

    def __init__(self, percent: float, size: int, minimum: int) -> None:
        self.percent = percent
        self.minimum = minimum
        self.outcomes: deque[bool] = deque(maxlen=size)

    def failure(self, now: float) -> bool:
        self.outcomes.append(True)
        seen = len(self.outcomes)
        return seen >= self.minimum and 100.0 * sum(self.outcomes) / seen >= self.percent

    def success(self) -> None:
        self.outcomes.append(False)

    def current(self, now: float) -> int:
        return sum(self.outcomes)

    def clear(self) -> None:
        self.outcomes.clear()
