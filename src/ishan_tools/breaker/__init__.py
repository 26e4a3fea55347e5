"""Circuit breaker: stop calling something that keeps failing, try again after a while.

The API is the original library's (`agent_circuit_breaker`): the `circuit_breaker` decorator,
`CircuitBreaker` as context manager (sync and async) or through `call`, `CircuitState` and
`CircuitBreakerOpenError`. Beyond it: a failure-rate mode, several half-open trials, manual
control, `stats()` and an injectable clock.

Counting modes (one per breaker):
- consecutive (default): `failure_threshold` failures in a row open the circuit;
- time window (`failure_window=s`): `failure_threshold` failures within the last `s` seconds;
- failure rate (`failure_rate_threshold=pct`): of the last `sliding_window_size` calls, once at
  least `minimum_calls` were seen, a failure share of `pct` percent or more opens it.

Slow calls, in any mode (`slow_call_duration=s`): a call that takes longer than `s` seconds
on the breaker's clock is slow, succeeded or not; once `minimum_calls` are among the last
`sliding_window_size`, a slow share of `slow_call_rate_threshold` (a fraction, default 1.0)
opens the circuit, and slow half-open trials re-open it at that share of `success_threshold`.

An exception counts as a failure unless it is one of `excluded_exceptions` (checked first) or
`failure_predicate(exc)` returns False; such an exception counts as neither failure nor
success. Exceptions that are not `Exception` subclasses (cancellation, KeyboardInterrupt)
never count. Callbacks run outside any lock, in this order for a call that trips the
circuit: `on_failure`, `on_state_change(old, new)`, then `on_open`/`on_close`/`on_half_open`.
A callback that raises is logged and ignored.

Two steps, one state store: every entry point (`call`, `call_async`, the context managers,
both decorators) is a shell around the breaker's two steps, `_acquire()` before the call and
`_record(permit, exc)` after it. They ask the breaker's `StateStore`
(`ishan_tools.breaker.store`) for a `Permit` and hand it back with the outcome; the store
holds the state, the counted failures and the half-open trials, the breaker keeps callbacks,
fallback, classification and its own call totals. The default `MemoryStore` keeps one
process's state under one `threading.Lock` held for a few attribute updates, never across a
call or an await; while it is `quiet` (closed, successes change nothing) a successful call
takes no lock and no step at all, only `next()` on an `itertools.count` (atomic under the
GIL). `CircuitBreaker(store=...)` takes another store's factory, such as one shared across
processes, which is quiet at most as of its last reply. A store that also has the steps as
coroutines (`AsyncStateStore`) has them awaited by the async entry points.
"""

from __future__ import annotations

from ishan_tools.breaker.circuit import CircuitBreaker
from ishan_tools.breaker.decorator import circuit_breaker
from ishan_tools.breaker.state import BreakerStats, CircuitBreakerOpenError, CircuitState

__all__ = [
    "BreakerStats",
    "CircuitBreaker",
    "CircuitBreakerOpenError",
    "CircuitState",
    "circuit_breaker",
]
