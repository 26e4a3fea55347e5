"""Connecting to MongoDB: one clear line for a bad URI, an unreachable server or bad credentials.

Nothing is written before `connect` has proved the server answers and the user may use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ishan_tools.errors import MigrationError, UsageError

DEFAULT_URI = "mongodb://localhost:27017"
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ConnectionConfig:
    """Where the migrations run: URI (default `mongodb://localhost:27017`) and database."""

    uri: str = DEFAULT_URI
    db: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S


def redact(uri: str) -> str:
    """The URI with its password hidden, for messages."""
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", uri)


def server_message(exc: Exception) -> str:
    """What the server said, on one line: an `OperationFailure`'s `errmsg` without the full
    reply pymongo appends, the first line of anything else."""
    from ishan_tools.migrate.script import first_line, one_line

    details = getattr(exc, "details", None)
    errmsg = details.get("errmsg") if isinstance(details, dict) else None
    if isinstance(errmsg, str) and errmsg.strip():
        return f"{type(exc).__name__}: {first_line(errmsg)}"
    return one_line(exc).split(", full error: ")[0]


def connect(config: ConnectionConfig) -> tuple[Any, Any]:
    """A pinged `(MongoClient, Database)` pair, or a MigrationError saying what to fix."""
    from pymongo import MongoClient
    from pymongo.errors import ConfigurationError, InvalidURI, OperationFailure, PyMongoError
    from pymongo.uri_parser import parse_uri

    shown = redact(config.uri)
    try:
        parsed = parse_uri(config.uri)
    except (InvalidURI, ConfigurationError, ValueError) as exc:
        raise UsageError(f"invalid MongoDB URI {shown}: {exc}") from None
    db_name = config.db or parsed.get("database")
    if not db_name:
        raise UsageError(f"no database given: put it in the URI ({shown.rstrip('/')}/mydb) or --db")
    timeout_ms = int(config.timeout_s * 1000)
    try:
        client: Any = MongoClient(
            config.uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            appname="ishan-migrate",
        )
    except (ConfigurationError, ValueError, TypeError) as exc:
        raise UsageError(f"invalid MongoDB URI {shown}: {exc}") from None
    try:
        client.admin.command("ping")
        database = client[db_name]
        database.list_collection_names()
    except OperationFailure as exc:
        client.close()
        if exc.code in (18, 13):
            what = "authentication failed" if exc.code == 18 else "not authorized"
            raise MigrationError(
                f"{what} for {shown}: check the user, password and authSource"
            ) from None
        raise MigrationError(f"{shown}: {exc.details or exc}") from None
    except PyMongoError as exc:
        client.close()
        reason = str(exc).split(",")[0].split(" (configured")[0]
        raise MigrationError(
            f"cannot reach {shown} ({reason}): start MongoDB or pass --uri"
        ) from None
    except Exception as exc:
        client.close()
        raise MigrationError(f"cannot use {shown}: {exc}") from None
    return client, database


@contextmanager
def connected(config: ConnectionConfig) -> Iterator[Any]:
    """The pinged database for the duration of a `with` block; the client is closed after."""
    client, database = connect(config)
    try:
        yield database
    finally:
        client.close()
