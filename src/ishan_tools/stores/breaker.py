"""A circuit breaker's state in Redis, shared by every process guarding the same thing.

`RedisBreakerStore` is a state store for the breaker's two steps: `acquire()` before a call
(an ordinary permit while closed, the one trial permit while half-open, `Refused` while
open) and `record(permit, outcome)` after it. Each is one Lua script, so transitions are
atomic across processes; times are Redis' (`TIME`). A half-open trial is a lease: a token in
`KEY:trials` with a deadline, so that at most `half_open_max_calls` trials run at once in
all processes together, and a trial whose process died frees its slot when it expires.

The store has both faces of the breaker's seam (`ishan_tools.breaker.store`): the
synchronous `StateStore` over a `redis.Redis` client, and the `AsyncStateStore` steps over a
`redis.asyncio.Redis` one, which the breaker's async entry points await (the crawl's fetches
go through `CircuitBreaker.call_async`). `retrying(func, *args)` runs each async call (the
frontier's, which retries while Redis is away).

`quiet` is this process's last view ("closed, no failures counted"): while it holds, a
success needs no round trip and a call needs no permit, as in the in-memory store. Every
reply, and `observe()` (the frontier's claims carry the host's state), renews the view; a new
store has none yet, so its first call asks. An ordinary call's ignored outcome changes
nothing in Redis, so it makes no round trip either (nor does a fetch cancelled at shutdown).

Slow calls (`rules.slow_call_duration` set; the breaker times each call with its own clock
and hands `record` a `slow` flag): the record script keeps the last `sliding_window_size`
calls in `KEY:calls` and their slow count in the hash, and opens the circuit in the same
operation as the memory store would (at least `minimum_calls`, a slow share of at least
`slow_call_rate_threshold`; a slow trial re-opens once slow trials reach that share of
`success_threshold`). Every call then enters the shared window, so the view is never quiet:
each call takes its two round trips.

Layout of KEY (a hash): state (closed | open | half_open), opened (ms), failures, ok (trial
successes), slow (slow calls in `KEY:calls`), slowtrials. `KEY:calls` is a list of '1'
(slow) and '0', newest first. The crawl's claim script reads `state`, `opened` and
`KEY:trials` to keep an open host's URLs queued.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio

from ishan_tools.breaker import CircuitState
from ishan_tools.breaker.store import (
    ORDINARY,
    BreakerRules,
    Outcome,
    Permit,
    Refused,
    StoreView,
    Transition,
)
from ishan_tools.stores.client import cancellable, register_scripts

__all__ = ["RedisBreakerStore", "Retrying"]

Retrying = Callable[..., Awaitable[Any]]
"""`retrying(func, *args)`: `await func(*args)`, retried as the caller sees fit."""

_NOW = r"""
redis.replicate_commands()
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local K, T, C = KEYS[1], KEYS[2], KEYS[3]
"""

# Open -> half-open once the recovery timeout passed (returns the old state, or '').
_HALF_OPEN_IF_DUE = r"""
local function half_open_if_due(now, cooldown)
  local h = redis.call('HMGET', K, 'state', 'opened')
  if h[1] == 'open' and now >= (tonumber(h[2]) or 0) + cooldown then
    redis.call('HSET', K, 'state', 'half_open', 'ok', 0, 'slowtrials', 0)
    redis.call('DEL', T)
    return 'open'
  end
  return ''
end
"""

# ARGV: recovery ms, half-open max calls, trial lease ms, token.
# -> {'ordinary' | 'trial' | 'refused', state, retry after ms, moved from, failures}
_ACQUIRE = (
    _NOW
    + _HALF_OPEN_IF_DUE
    + r"""
local cooldown, most, ttl, token = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
local moved = half_open_if_due(now, cooldown)
local h = redis.call('HMGET', K, 'state', 'opened', 'failures')
local state = h[1] or 'closed'
if state == 'closed' then return {'ordinary', state, 0, moved, tonumber(h[3]) or 0} end
if state == 'half_open' then
  redis.call('ZREMRANGEBYSCORE', T, '-inf', now)
  if redis.call('ZCARD', T) < most then
    redis.call('ZADD', T, now + ttl, token)
    redis.call('PEXPIRE', T, ttl)
    return {'trial', state, 0, moved, 0}
  end
  return {'refused', state, 0, moved, 0}
end
return {'refused', state, math.max(0, (tonumber(h[2]) or 0) + cooldown - now), moved, 0}
"""
)

# The slow-call window (ARGV 6-9: slow 0/1, window size (0: not counted), minimum calls,
# slow share): a call enters it; true when the slow share now opens the circuit.
_SLOW_WINDOW = r"""
local slow, size = ARGV[6] == '1', tonumber(ARGV[7])
local minimum, rate = tonumber(ARGV[8]), tonumber(ARGV[9])
local function slow_call_opens()
  if size == 0 then return false end
  local count = tonumber(redis.call('HGET', K, 'slow')) or 0
  if slow then count = count + 1 end
  local seen = redis.call('LPUSH', C, slow and '1' or '0')
  if seen > size then
    if redis.call('RPOP', C) == '1' then count = count - 1 end
    seen = size
  end
  redis.call('HSET', K, 'slow', count)
  return seen >= minimum and count / seen >= rate
end
"""

# ARGV: trial (0/1), token, outcome (success | failure | ignored), failure threshold,
# success threshold, then the slow-call window's. -> {moved from, state now, failures}
_RECORD = (
    _NOW
    + _SLOW_WINDOW
    + r"""
local trial, token, outcome = ARGV[1] == '1', ARGV[2], ARGV[3]
local threshold, needed = tonumber(ARGV[4]), tonumber(ARGV[5])
local h = redis.call('HMGET', K, 'state', 'failures')
local state, failures = h[1] or 'closed', tonumber(h[2]) or 0
local function open()
  redis.call('HSET', K, 'state', 'open', 'opened', now_ms(), 'failures', 0, 'ok', 0,
    'slowtrials', 0)
  redis.call('DEL', T)
end
if trial then
  redis.call('ZREM', T, token)
  if state ~= 'half_open' or outcome == 'ignored' then return {'', state, failures} end
  if outcome == 'failure'
    or (slow and size > 0 and redis.call('HINCRBY', K, 'slowtrials', 1) / needed >= rate) then
    open()
    return {'half_open', 'open', 0}
  end
  if redis.call('HINCRBY', K, 'ok', 1) >= needed then
    redis.call('HSET', K, 'state', 'closed', 'failures', 0, 'ok', 0, 'slow', 0)
    redis.call('HDEL', K, 'opened')
    redis.call('DEL', T, C)
    return {'half_open', 'closed', 0}
  end
  return {'', state, 0}
end
if state ~= 'closed' or outcome == 'ignored' then return {'', state, failures} end
local slow_opens = slow_call_opens()
if outcome == 'success' then
  if failures > 0 then redis.call('HSET', K, 'failures', 0) end
  failures = 0
else
  failures = redis.call('HINCRBY', K, 'failures', 1)
end
if slow_opens or failures >= threshold then
  open()
  return {'closed', 'open', 0}
end
return {'', state, failures}
"""
)

# ARGV: recovery ms.
# -> {state, opened ms or -1, retry after ms, failures, moved from, slow calls, window calls}
_READ = (
    _NOW
    + _HALF_OPEN_IF_DUE
    + r"""
local now = now_ms()
local moved = half_open_if_due(now, tonumber(ARGV[1]))
local h = redis.call('HMGET', K, 'state', 'opened', 'failures', 'slow')
local state = h[1] or 'closed'
local opened = tonumber(h[2]) or -1
local retry = 0
if state == 'open' then retry = math.max(0, opened + tonumber(ARGV[1]) - now) end
local slow, window = tonumber(h[4]) or 0, redis.call('LLEN', C)
return {state, opened, retry, tonumber(h[3]) or 0, moved, slow, window}
"""
)

# ARGV: the state to force (open | closed). -> {moved from}
_FORCE = (
    _NOW
    + r"""
local old = redis.call('HGET', K, 'state') or 'closed'
if ARGV[1] == 'open' then
  redis.call('HSET', K, 'state', 'open', 'opened', now_ms(), 'failures', 0, 'ok', 0,
    'slowtrials', 0)
else
  redis.call('HSET', K, 'state', 'closed', 'failures', 0, 'ok', 0, 'slow', 0)
  redis.call('HDEL', K, 'opened')
  redis.call('DEL', C)
end
redis.call('DEL', T)
if old == ARGV[1] then return {''} end
return {old}
"""
)

_STATES = {state.value: state for state in CircuitState}


def _moved(old: str, new: str) -> Transition | None:
    return (_STATES[old], _STATES[new]) if old and old != new else None


def _texts(reply: list[Any]) -> list[Any]:
    """A script's reply with bytes decoded (the client may not decode responses)."""
    return [part.decode() if isinstance(part, bytes) else part for part in reply]


async def _once(func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    return await cancellable(func, *args)


class RedisBreakerStore:
    """One circuit's state under `key` in Redis; see the module docstring.

    `RedisBreakerStore(rules, clock, key=..., client=..., async_client=...)` has the shape of
    the breaker's store factory (`functools.partial(RedisBreakerStore, key=k, client=c)`);
    `clock` is not used, Redis keeps the time. `client` serves the sync face, `async_client`
    the async one; a face without its client refuses. Only the consecutive counting mode is
    supported (with slow calls counted or not).
    """

    def __init__(
        self,
        rules: BreakerRules,
        clock: Callable[[], float] | None = None,
        *,
        key: str,
        client: redis.Redis | None = None,
        async_client: redis.asyncio.Redis | None = None,
        trial_ttl: float = 60.0,
        retrying: Retrying = _once,
    ) -> None:
        if rules.failure_window is not None or rules.failure_rate_threshold is not None:
            raise ValueError("the Redis breaker store counts consecutive failures only")
        self.rules = rules
        self.key = key
        self.keys = [key, key + ":trials", key + ":calls"]
        self.quiet = False  # no view yet: the first call asks
        self._counts_slow = rules.slow_call_rate_threshold is not None
        self._slow_args = [
            rules.sliding_window_size if self._counts_slow else 0,
            rules.minimum_calls,
            repr(rules.slow_call_rate_threshold or 1.0),
        ]
        self._acquire_args = [
            int(rules.recovery_timeout * 1000),
            rules.half_open_max_calls,
            int(trial_ttl * 1000),
        ]
        self._sync = self._register(client, "client", "async")
        self._async = self._register(async_client, "async_client", "sync")
        self._retrying = retrying

    @staticmethod
    def _register(client: Any, given: str, other: str) -> dict[str, Any]:
        sources = {"acquire": _ACQUIRE, "record": _RECORD, "read": _READ, "force": _FORCE}
        if client is not None:
            return register_scripts(client, sources)

        def refuse(*args: Any) -> Any:
            raise TypeError(f"this RedisBreakerStore has no {given}=: use its {other} steps")

        return dict.fromkeys(sources, refuse)

    # -- arguments and replies, shared by the two faces ---------------------------------------

    def _record_args(self, permit: Permit, outcome: Outcome, slow: bool) -> list[Any]:
        token = permit.token if isinstance(permit.token, str) else ""
        rules = self.rules
        return [
            int(permit.trial),
            token,
            outcome.value,
            rules.failure_threshold,
            rules.success_threshold,
            int(slow),
            *self._slow_args,
        ]

    def _renew(self, state: str, failures: int) -> None:
        """The view after a reply: quiet while closed, no failures, and slow calls uncounted."""
        self.quiet = state == "closed" and failures == 0 and not self._counts_slow

    def _permit(self, reply: list[Any], token: str) -> Permit:
        kind, state, retry_ms, moved, failures = _texts(reply)
        self._renew(state, int(failures))
        transition = _moved(moved, state)
        if kind == "refused":
            raise Refused(int(retry_ms) / 1000)
        if kind == "trial":
            return Permit(trial=True, transition=transition, token=token)
        return ORDINARY if transition is None else Permit(trial=False, transition=transition)

    def _recorded(self, reply: list[Any]) -> Transition | None:
        moved, state, failures = _texts(reply)
        self._renew(state, int(failures))
        return _moved(moved, state)

    def _view(self, reply: list[Any]) -> StoreView:
        state, opened, retry_ms, failures, moved, slow, window = _texts(reply)
        self._renew(state, int(failures))
        return StoreView(
            state=_STATES[state],
            opened_at=int(opened) / 1000 if int(opened) >= 0 else None,
            retry_after=int(retry_ms) / 1000,
            current_failures=int(failures),
            transition=_moved(moved, state),
            slow_calls=int(slow),
            window_calls=int(window),
        )

    def observe(self, state: str, failures: int) -> None:
        """Renew this process's view from state read elsewhere (a frontier claim)."""
        self._renew(state, failures)

    # -- the seam: synchronous ----------------------------------------------------------------

    def acquire(self) -> Permit:
        token = uuid.uuid4().hex
        return self._permit(self._sync["acquire"](self.keys, [*self._acquire_args, token]), token)

    def record(self, permit: Permit, outcome: Outcome, slow: bool = False) -> Transition | None:
        if outcome is Outcome.IGNORED and not permit.trial:
            return None
        args = self._record_args(permit, outcome, slow)
        return self._recorded(self._sync["record"](self.keys, args))

    def read(self) -> StoreView:
        return self._view(self._sync["read"](self.keys, [self._acquire_args[0]]))

    def force(self, state: CircuitState) -> Transition | None:
        (moved,) = _texts(self._sync["force"](self.keys, [state.value]))
        self._renew(state.value, 0)
        return _moved(moved, state.value)

    # -- the same, for asyncio ----------------------------------------------------------------

    async def acquire_async(self) -> Permit:
        token = uuid.uuid4().hex
        args = [*self._acquire_args, token]
        return self._permit(await self._retrying(self._async["acquire"], self.keys, args), token)

    async def record_async(
        self, permit: Permit, outcome: Outcome, slow: bool = False
    ) -> Transition | None:
        if outcome is Outcome.IGNORED and not permit.trial:
            return None
        args = self._record_args(permit, outcome, slow)
        return self._recorded(await self._retrying(self._async["record"], self.keys, args))
