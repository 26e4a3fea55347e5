"""How a closed circuit counts failures (consecutive, in a time window, or as a rate) and
slow calls (a share of the last calls).

Each counter is used under the breaker's lock, except `success()` of the rate counter, which
the lock-free success path calls (a `deque.append` is atomic under the GIL). The slow-call
counter needs no step at all for a success that was not slow: it reads the breaker's `Tally`.
"""

from __future__ import annotations

import itertools
import threading
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


class Tally:
    """A count that a lock-free path bumps with `next(tally.count)` (atomic under the GIL) and
    a locked one reads exactly: each `read()` draws one number too, and takes back one per
    reading so far. The breaker bumps one per success; its totals and a store read it."""

    def __init__(self) -> None:
        self.count = itertools.count()
        self._readings = 0
        self._lock = threading.Lock()

    def read(self) -> int:
        """How many times the count was bumped."""
        with self._lock:
            drawn = next(self.count)
            self._readings += 1
            return drawn - self._readings + 1


class SlowCallCounter:
    """Opens when a `rate` share (0-1) or more of the last `size` calls were slow, once
    `minimum` were seen. Successes and failures are calls; ignored exceptions are not.

    It needs no step for a success that was not slow: every success bumps `successes` (the
    breaker's own tally), so the calls so far are that plus the failures recorded here, and
    only slow calls keep their position. Once `warm` (`minimum` calls in the window), a call
    that was not slow can only lower the share; before, every call must be checked with `add`.
    Used under the store's lock.
    """

    def __init__(self, rate: float, size: int, minimum: int, successes: Tally) -> None:
        self.rate = rate
        self.size = size
        self.minimum = minimum
        self.successes = successes
        self.failures = 0
        self.start = 0  # calls before the window began (the last `clear()`)
        self.slow: deque[int] = deque()  # positions (1-based) of the slow calls in the window
        self.warm = minimum <= 0

    def add(self, slow: bool, failure: bool) -> bool:
        """Record a call (a success already counted in `successes`); True when the slow share
        now opens the circuit."""
        checked = slow or not self.warm
        if failure:
            self.failures += 1
        position = self.successes.read() + self.failures
        if slow:
            self.slow.append(position)
        slow_now, seen = self._window(position)
        self.warm = seen >= self.minimum
        return checked and self.warm and slow_now / seen >= self.rate

    def _window(self, position: int) -> tuple[int, int]:
        horizon = position - self.size
        while self.slow and self.slow[0] <= horizon:
            self.slow.popleft()
        return len(self.slow), min(position - self.start, self.size)

    def current(self) -> tuple[int, int]:
        """(slow calls, calls) in the window."""
        return self._window(self.successes.read() + self.failures)

    def clear(self) -> None:
        self.slow.clear()
        self.start = self.successes.read() + self.failures
        self.warm = self.minimum <= 0
