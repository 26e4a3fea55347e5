"""Circuit breaker: stop calling something that keeps failing, try again after a while.

The API is the seed library's (`agent_circuit_breaker`): the `circuit_breaker` decorator,
`CircuitBreaker` as context manager (sync and async) or through `call`, `CircuitState` and
`CircuitBreakerOpenError`. Beyond it: a failure-rate mode, several half-open trials, manual
control, `stats()` and an injectable clock.

Counting modes (one per breaker):
- consecutive (default): `failure_threshold` failures in a row open the circuit;
- time window (`failure_window=s`): `failure_threshold` failures within the last `s` seconds;
- failure rate (`failure_rate_threshold=pct`): of the last `sliding_window_size` calls, once at
  least `minimum_calls` were seen, a failure share of `pct` percent or more opens it.

An exception counts as a failure unless it is one of `excluded_exceptions` (checked first) or
`failure_predicate(exc)` returns False; such an exception counts as neither failure nor
success. Exceptions that are not `Exception` subclasses (cancellation, KeyboardInterrupt)
never count. Callbacks run outside the lock, in this order for a call that trips the
circuit: `on_failure`, `on_state_change(old, new)`, then `on_open`/`on_close`/`on_half_open`.
A callback that raises is logged and ignored.

Thread and asyncio safety: state changes happen under one `threading.Lock` held for a few
attribute updates, never across a call or an await. The closed-state success path takes no
lock: it relies on the GIL making `next()` on an `itertools.count` and `deque.append` atomic.
"""

from __future__ import annotations

from ishan_tools.breaker.circuit import CircuitBreaker
from ishan_tools.breaker.decorate import circuit_breaker
from ishan_tools.breaker.state import BreakerStats, CircuitBreakerOpenError, CircuitState

__all__ = [
    "BreakerStats",
    "CircuitBreaker",
    "CircuitBreakerOpenError",
    "CircuitState",
    "circuit_breaker",
]
