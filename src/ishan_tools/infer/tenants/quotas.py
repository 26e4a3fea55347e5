"""A tenant's quotas: concurrent sessions and tokens per minute, as one coordinator holds them.

`Quotas` is what the coordinator asks: `acquire` a session before a request is routed
(raises `QuotaExceeded`, a 429 that says when to come back), `release` it when the stream
ends, and `charge` the tokens the worker reported for it. `LocalQuotas` keeps the figures
in this process, so each coordinator enforces every limit on its own (N coordinators behind
a balancer let a tenant use up to N times its limits); `shared.RedisQuotas` (`--state`)
keeps them in Redis for all of them, and is a `SharedState`.

Tokens per minute are a sliding window of one-second buckets: the last 60 s of charges. A
tenant is refused while that sum is at or over its limit, with `Retry-After` the seconds
until enough buckets have left the window for the sum to fall below it. The coordinator has
no tokenizer, so a stream is charged when it ends, with the worker's own count (prompt plus
completion): a long stream can take a tenant past its limit, and its next requests wait
for the window to pass it. A session over the limit is refused for one second: any of the
tenant's streams may end at any moment.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ishan_tools.infer.errors import RelayError
from ishan_tools.infer.tenants.book import Tenant

WINDOW = 60  # seconds of usage a tokens-per-minute limit counts
SESSION_RETRY = 1.0  # seconds a tenant at its session limit is told to wait


class QuotaExceeded(RelayError):
    """A tenant is at a limit (429); `kind` is "sessions" or "tokens", as OpenAI names them."""

    def __init__(self, kind: str, message: str, retry_after: float) -> None:
        super().__init__(429, message)
        self.kind = kind
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up, at least 1 (HTTP's `Retry-After`)."""
        return str(max(1, math.ceil(self.retry_after)))


def sessions_exceeded(tenant: Tenant) -> QuotaExceeded:
    return QuotaExceeded(
        "sessions",
        f"rate limit reached: {tenant.max_sessions} concurrent sessions for this key; "
        f"retry in {SESSION_RETRY:g} s",
        SESSION_RETRY,
    )


def tokens_exceeded(tenant: Tenant, used: int, wait: float) -> QuotaExceeded:
    return QuotaExceeded(
        "tokens",
        f"rate limit reached: {used} of {tenant.tokens_per_minute} tokens per minute used "
        f"by this key; retry in {max(1, math.ceil(wait))} s",
        wait,
    )


class Quotas(Protocol):
    """Where a coordinator keeps its tenants' sessions and token windows."""

    async def acquire(self, tenant: Tenant) -> None:
        """Take one of the tenant's sessions, or raise QuotaExceeded."""

    async def release(self, tenant: Tenant) -> None:
        """Give back a session `acquire` took."""

    async def charge(self, tenant: Tenant, tokens: int) -> None:
        """Count `tokens` against the tenant's tokens per minute."""

    async def load(self, tenant: Tenant) -> tuple[int, int]:
        """The tenant's sessions now and its tokens over the last minute."""

    async def close(self) -> None:
        """Let go of what the quotas hold outside this process."""


@runtime_checkable
class SharedState(Protocol):
    """Quotas kept outside this process, which fall back to its own while they cannot be
    reached (`/metrics` shows both figures)."""

    shared: bool  # the limits hold across coordinators now (False: this one's alone)
    fallbacks: int  # times they fell back to this coordinator's own


@dataclass
class TokenWindow:
    """Tokens charged per second over the last `WINDOW` seconds."""

    buckets: deque[list[int]] = field(default_factory=deque)  # [second, tokens], oldest first
    total: int = 0

    def _expire(self, now: float) -> None:
        oldest = int(now) - WINDOW
        while self.buckets and self.buckets[0][0] <= oldest:
            self.total -= self.buckets.popleft()[1]

    def add(self, tokens: int, now: float) -> None:
        self._expire(now)
        second = int(now)
        if self.buckets and self.buckets[-1][0] == second:
            self.buckets[-1][1] += tokens
        else:
            self.buckets.append([second, tokens])
        self.total += tokens

    def used(self, now: float) -> int:
        self._expire(now)
        return self.total

    def wait(self, limit: int, now: float) -> float:
        """Seconds until the sum falls below `limit` (0 when it is below now)."""
        self._expire(now)
        left = self.total
        for second, tokens in self.buckets:
            if left < limit:
                break
            left -= tokens
            if left < limit:
                return max(0.0, second + WINDOW - now)  # when this bucket leaves the window
        return 0.0


class LocalQuotas:
    """The quotas of this coordinator alone."""

    def __init__(self) -> None:
        self.sessions: dict[str, int] = {}
        self.windows: dict[str, TokenWindow] = {}
        self.clock = time.monotonic

    def check_tokens(self, tenant: Tenant) -> None:
        limit = tenant.tokens_per_minute
        window = self.windows.get(tenant.name)
        if limit is None or window is None:
            return
        now = self.clock()
        used = window.used(now)
        if used >= limit:
            raise tokens_exceeded(tenant, used, window.wait(limit, now))

    async def acquire(self, tenant: Tenant) -> None:
        self.check_tokens(tenant)
        held = self.sessions.get(tenant.name, 0)
        if tenant.max_sessions is not None and held >= tenant.max_sessions:
            raise sessions_exceeded(tenant)
        self.hold(tenant)

    def hold(self, tenant: Tenant) -> None:
        """Count a session taken elsewhere (shared quotas count theirs here too)."""
        self.sessions[tenant.name] = self.sessions.get(tenant.name, 0) + 1

    async def release(self, tenant: Tenant) -> None:
        held = self.sessions.get(tenant.name, 0) - 1
        if held > 0:
            self.sessions[tenant.name] = held
        else:
            self.sessions.pop(tenant.name, None)

    async def charge(self, tenant: Tenant, tokens: int) -> None:
        if tokens > 0:
            self.windows.setdefault(tenant.name, TokenWindow()).add(tokens, self.clock())

    async def load(self, tenant: Tenant) -> tuple[int, int]:
        window = self.windows.get(tenant.name)
        return self.sessions.get(tenant.name, 0), window.used(self.clock()) if window else 0

    async def close(self) -> None:
        return None
