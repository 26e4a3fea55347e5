"""Tenant quotas that hold across coordinators: sessions and token windows in Redis.

`RedisQuotas` (`--state redis://HOST:PORT/DB`) keeps every tenant's sessions and tokens
per minute in one Redis, so that all the coordinators sharing it enforce one limit, not
one each. Every step is one Lua script (package data under `lua/`), on Redis' clock:

- Sessions: per tenant, a hash of coordinator -> sessions it holds. Each coordinator (a
  random id per process) holds a lease key, renewed every third of `lease` seconds;
  `acquire` counts only coordinators whose lease is alive, deletes the others' fields,
  checks the limit and takes the session, atomically. A coordinator killed with SIGKILL
  stops renewing, so its sessions stop counting when its lease expires; `close` (a clean
  shutdown) deletes its lease and its fields at once.
- Tokens: per tenant, a hash of second -> tokens charged, summed over the same 60 s window
  as `TokenWindow`; a tenant over its limit waits until enough seconds have left it.

Redis trouble never stops a request: a call that fails (a short timeout, no retries) makes
this coordinator enforce the limits alone (`LocalQuotas`), with one log line; the lease
renewal tries Redis again and, once it answers, writes back the sessions this coordinator
holds then and shares again, with one more line. Sessions and tokens are always counted in
this process too, so the fallback starts from what this coordinator holds, and a session
taken during the outage is in Redis once it is back. Tokens charged during an outage count
on their coordinator only.

Keys (see docs/internals/infer-redis.md), under `ishan:infer:tenants:`:
    lease:COORDINATOR   "1", expiring `lease` seconds after its last renewal
    sessions:TENANT     hash: coordinator -> sessions it holds
    tokens:TENANT       hash: second (Unix time) -> tokens charged; expires a minute after
                        the last charge
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import redis

from ishan_tools.infer.tenants.book import Tenant
from ishan_tools.infer.tenants.quotas import (
    WINDOW,
    LocalQuotas,
    sessions_exceeded,
    tokens_exceeded,
)
from ishan_tools.stores.client import (
    REDIS_DOWN,
    async_client,
    cancellable,
    lua_source,
    register_scripts,
)

__all__ = ["KEY_ROOT", "RedisQuotas"]

log = logging.getLogger(__name__)

KEY_ROOT = "ishan:infer:tenants:"
TIMEOUT = 0.5  # seconds a call may take before this coordinator enforces its limits alone
CONNECTIONS = 8  # to Redis, per coordinator
NAMES = ("acquire", "release", "charge", "load", "renew", "join", "leave")
_HERE = __name__.rpartition(".")[0]
_COMMON = f"local WINDOW = {WINDOW}\n" + lua_source(_HERE, "common")
SCRIPTS = {name: _COMMON + lua_source(_HERE, name) for name in NAMES}
# a server away, and one that answers but cannot serve (out of memory, a read-only replica)
TROUBLE: tuple[type[BaseException], ...] = (*REDIS_DOWN, redis.RedisError)


def without_password(url: str) -> str:
    """`url` fit for a log line: no user or password."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=host).geturl()


def _limit(value: int | None) -> str:
    return "" if value is None else str(value)


class RedisQuotas:
    """The quotas of every coordinator sharing the Redis at `url` (this one's alone while
    it cannot be reached). `start` takes the lease, `close` gives it back."""

    def __init__(self, url: str, lease: float, *, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.lease = lease
        self.timeout = timeout
        self.coordinator = secrets.token_hex(8)
        self.local = LocalQuotas()  # this coordinator's sessions and tokens, always
        self.tenants: set[str] = set()  # those it took sessions for (fields it may hold)
        self.shared = False  # until `start` reaches Redis
        self.fallbacks = 0
        self.client = async_client(url, timeout, CONNECTIONS)
        self.scripts = register_scripts(self.client, SCRIPTS)
        self._down_since: float | None = None
        self._closed = False
        self._renewal: asyncio.Task[None] | None = None

    async def _run(self, name: str, *args: Any) -> Any:
        async with asyncio.timeout(self.timeout):  # a pool wait included
            return await cancellable(self.scripts[name], None, [KEY_ROOT, self.coordinator, *args])

    # -- the lease, and falling back ---------------------------------------------------------

    async def start(self) -> None:
        """Take the lease (or fall back, Redis away) and keep renewing it."""
        await self._renew()
        self._renewal = asyncio.create_task(self._keep_lease())

    async def _keep_lease(self) -> None:
        while not self._closed:  # not only the cancel: redis-py may swallow one mid-call
            await asyncio.sleep(self.lease / 3)
            await self._renew()

    async def _renew(self) -> None:
        try:
            if not self.shared:
                await self._join()
                self._back()
            elif not await self._run("renew", round(self.lease * 1000)):
                await self._join()  # the lease had expired: its sessions may be gone
        except TROUBLE as exc:
            self._fall_back(exc)

    def _held(self) -> dict[str, int]:
        return {name: self.local.sessions.get(name, 0) for name in sorted(self.tenants)}

    async def _join(self) -> None:
        """Take the lease and write the sessions held now (again if some changed meanwhile)."""
        written: dict[str, int] | None = None
        while (held := self._held()) != written:
            pairs = [str(item) for pair in held.items() for item in pair]
            await self._run("join", round(self.lease * 1000), *pairs)
            written = held

    def _fall_back(self, exc: BaseException) -> None:
        if self._down_since is not None or self._closed:
            return
        self._down_since = time.monotonic()
        self.shared = False
        self.fallbacks += 1
        reason = str(exc).strip().rstrip(".") or type(exc).__name__
        log.warning(
            "tenant limits: no answer from %s (%s): this coordinator enforces them alone "
            "until Redis is back",
            without_password(self.url),
            reason,
        )

    def _back(self) -> None:
        if self._down_since is not None:
            log.info(
                "tenant limits: %s is back after %.1f s: limits hold across coordinators again",
                without_password(self.url),
                time.monotonic() - self._down_since,
            )
        self._down_since = None
        self.shared = True

    # -- Quotas ------------------------------------------------------------------------------

    async def acquire(self, tenant: Tenant) -> None:
        self.tenants.add(tenant.name)
        if self.shared:
            try:
                verdict, used, wait_ms = await self._run(
                    "acquire",
                    tenant.name,
                    _limit(tenant.max_sessions),
                    _limit(tenant.tokens_per_minute),
                )
            except TROUBLE as exc:
                self._fall_back(exc)
            else:
                if verdict == "tokens":
                    raise tokens_exceeded(tenant, int(used), int(wait_ms) / 1000)
                if verdict == "sessions":
                    raise sessions_exceeded(tenant)
                self.local.hold(tenant)
                return
        await self.local.acquire(tenant)

    async def release(self, tenant: Tenant) -> None:
        await self.local.release(tenant)
        if self.shared:
            try:
                await self._run("release", tenant.name)
            except TROUBLE as exc:
                self._fall_back(exc)

    async def charge(self, tenant: Tenant, tokens: int) -> None:
        await self.local.charge(tenant, tokens)
        if self.shared and tokens > 0:
            try:
                await self._run("charge", tenant.name, tokens)
            except TROUBLE as exc:
                self._fall_back(exc)

    async def load(self, tenant: Tenant) -> tuple[int, int]:
        if self.shared:
            try:
                sessions, tokens = await self._run("load", tenant.name)
            except TROUBLE as exc:
                self._fall_back(exc)
            else:
                return int(sessions), int(tokens)
        return await self.local.load(tenant)

    async def close(self) -> None:
        """Stop renewing, and free the lease and this coordinator's sessions at once."""
        self._closed = True
        self.shared = False  # a stream cut short at exit gives its session back here only
        if self._renewal is not None:
            self._renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewal
        with contextlib.suppress(*TROUBLE):
            await self._run("leave", *sorted(self.tenants))
        await self.client.aclose()
