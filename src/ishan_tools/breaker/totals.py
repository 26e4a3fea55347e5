"""A breaker's own call totals: what `stats()` reports of this process's calls.

The store keeps what processes sharing a circuit must agree on; these are one breaker's
alone. Successes are counted without a lock (`next()` on an `itertools.count` is atomic under
the GIL), so that a successful call of a closed circuit takes none; the rest under one lock.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from ishan_tools.breaker.state import BreakerStats
from ishan_tools.breaker.store import StoreView


class CallTotals:
    """Successes, failures, ignored and rejected calls, and the last failure, since creation
    or the last `reset()`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.successes = itertools.count()  # next() counts one; bumped by the breaker directly
        self._lock = threading.Lock()
        self._success_readings = 0
        self._successes_before_reset = 0
        self._failures = 0
        self._ignored = 0
        self._rejected = 0
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

    def reset(self) -> None:
        with self._lock:
            self._successes_before_reset = self._successes_so_far()
            self._failures = self._ignored = self._rejected = 0
            self._last_failure = self._last_failure_at = None

    def _successes_so_far(self) -> int:
        """Successes since creation (lock held), read from the count without a look inside:
        each reading draws one number too, so it takes back one per reading so far."""
        drawn = next(self.successes)
        self._success_readings += 1
        return drawn - self._success_readings + 1

    def snapshot(self, name: str, view: StoreView) -> BreakerStats:
        """These totals with the store's `view`, as one `BreakerStats`."""
        with self._lock:
            successes = self._successes_so_far() - self._successes_before_reset
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
            )
