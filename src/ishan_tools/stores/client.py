"""Reaching a Redis server: clients that do not retry by themselves, what a lost server
raises, and Lua scripts: read from a package's `lua/` folder, registered on a client.

Callers retry through `stores.retry.RedisRetry`, which waits, with backoff, for a server that
is away (a restart, a blip) up to a limit of their choosing.

redis-py's asyncio client can swallow a `task.cancel()` that lands while a command is in
flight: the command then returns (or fails as a lost connection) and the task runs on, so a
loop that renews a lease never ends and whoever awaits it hangs. `cancellable` is how async
calls are made here: a cancel that came during the call is raised again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from importlib.resources import files
from typing import Any, TypeVar

import redis
import redis.asyncio
from redis.backoff import NoBackoff

__all__ = [
    "REDIS_DOWN",
    "async_client",
    "cancellable",
    "lua_source",
    "register_scripts",
    "sync_client",
]

T = TypeVar("T")

# What a lost or restarting server raises (BusyLoadingError, "LOADING", is a ConnectionError).
REDIS_DOWN: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ConnectionError,
    OSError,
)


def _options(socket_timeout: float) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "health_check_interval": 0,
    }


def async_client(url: str, socket_timeout: float, connections: int = 2) -> redis.asyncio.Redis:
    """An asyncio client that does not retry by itself (its caller retries, with backoff)
    and holds at most `connections` connections: callers beyond them wait their turn, so a
    process costs Redis a few client buffers, not one per task."""
    from redis.asyncio.retry import Retry

    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=connections,
        timeout=None,
        retry=Retry(NoBackoff(), 0),
        **_options(socket_timeout),
    )
    return redis.asyncio.Redis(connection_pool=pool)


def sync_client(url: str, socket_timeout: float = 5.0) -> redis.Redis:
    """A synchronous client that does not retry by itself."""
    from redis.retry import Retry

    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **_options(socket_timeout))


def register_scripts(client: Any, sources: Mapping[str, str]) -> dict[str, Any]:
    """Each Lua source of `sources` registered on `client` (sync or async): a callable that
    runs it by its SHA and loads it again if the server lost it (a restart)."""
    return {name: client.register_script(source) for name, source in sources.items()}


def lua_source(package: str, name: str) -> str:
    """The text of `lua/NAME.lua`, shipped as package data of `package`."""
    return (files(package) / "lua" / f"{name}.lua").read_text(encoding="utf-8")


async def cancellable(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`await func(*args)`, a call through redis-py's asyncio client; when the calling task
    was cancelled during it, CancelledError, even if redis-py swallowed the cancel."""
    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    try:
        return await func(*args)
    finally:
        if task is not None and task.cancelling() > before:
            raise asyncio.CancelledError
