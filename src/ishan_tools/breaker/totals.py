"""A breaker's own call totals: what `stats()` reports of this process's calls.

The store keeps what processes sharing a circuit must agree on; these are one breaker's
alone. Successes are counted without a lock (`next()` on an `itertools.count` is atomic under
the GIL), so that a successful call of a closed circuit takes none; the rest under one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ishan_tools.breaker.counting import Tally
from ishan_tools.breaker.state import BreakerStats
from ishan_tools.breaker.store import StoreView


class CallTotals:
    """Successes, failures, ignored, rejected and slow calls, and the last failure, since
    creation or the last `reset()`."""

    def __init__(self, clock: Callable[[], float], tally: Tally | None = None) -> None:
        self.clock = clock
        self.tally = tally or Tally()  # the store's, when it counts calls by it
        self.successes = self.tally.count  # next() counts one; bumped by the breaker directly
        self._lock = threading.Lock()
        self._successes_before_reset = 0
        self._failures = 0
        self._ignored = 0
        self._rejected = 0
        self._slow = 0
        self._last_failure: str | None = None
        self._last_failure_at: float | None = None

    def failure(self, exc: BaseException) -> None:
        with self._lock:
            self._failures += 1
            self._last_failure = f"{type(exc).__name__}: {exc}"
            self._last_failure_at = self.clock()

    def ignored(self) -> None:
        with self._lock:
            self._ignored += 1

    def rejected(self) -> None:
        with self._lock:
            self._rejected += 1

    def slow(self) -> None:
        with self._lock:
            self._slow += 1

    @property
    def slow_calls(self) -> int:
        return self._slow

    def reset(self) -> None:
        with self._lock:
            self._successes_before_reset = self.tally.read()
            self._failures = self._ignored = self._rejected = self._slow = 0
            self._last_failure = self._last_failure_at = None

    def snapshot(self, name: str, view: StoreView) -> BreakerStats:
        """These totals with the store's `view`, as one `BreakerStats`."""
        with self._lock:
            successes = self.tally.read() - self._successes_before_reset
            return BreakerStats(
                name=name,
                state=view.state,
                calls=successes + self._failures + self._ignored,
                successes=successes,
                failures=self._failures,
                ignored=self._ignored,
                rejected=self._rejected,
                current_failures=view.current_failures,
                last_failure=self._last_failure,
                last_failure_at=self._last_failure_at,
                opened_at=view.opened_at,
                retry_after=view.retry_after,
                slow_calls=self._slow,
                current_slow_calls=view.slow_calls,
                window_calls=view.window_calls,
                slow_call_rate=view.slow_calls / view.window_calls if view.window_calls else 0.0,
            )
