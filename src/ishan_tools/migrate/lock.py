"""The database-wide migration lock: one document in `_ishan_locks` with an owner and a TTL.

Acquiring inserts the document (the unique `_id` makes it atomic). A lock past its expiry, or
held by a process on this host that no longer exists (a killed run), is taken over with a
compare-and-swap on its owner. MongoDB's TTL index removes expired locks on its own too.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ishan_tools.errors import MigrationError

LOCKS = "_ishan_locks"
LOCK_ID = "migrate"
DEFAULT_TTL_S = 300.0


def utcnow() -> datetime:
    """Naive UTC, as pymongo returns datetimes by default."""
    return datetime.now(UTC).replace(tzinfo=None)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(holder: dict[str, Any]) -> str:
    return (
        f"migration {holder.get('migration')!r} (run {holder.get('run_id')}, pid "
        f"{holder.get('pid')} on {holder.get('host')}) since {holder.get('acquired_at')}"
        f", expires {holder.get('expires_at')}"
    )


def is_stale(holder: dict[str, Any]) -> bool:
    """Expired, or held by a process of this host that no longer exists (a killed run)."""
    if holder.get("expires_at") is not None and holder["expires_at"] < utcnow():
        return True
    same_host = holder.get("host") == socket.gethostname()
    return same_host and isinstance(holder.get("pid"), int) and not _pid_alive(holder["pid"])


@dataclass
class MigrationLock:
    """A held lock; `renew()` pushes its expiry forward, `release()` drops it."""

    database: Any
    migration: str
    run_id: str
    ttl_s: float = DEFAULT_TTL_S

    def __post_init__(self) -> None:
        self.owner = uuid.uuid4().hex
        self._renewed_at = utcnow()

    @property
    def collection(self) -> Any:
        return self.database[LOCKS]

    def _document(self) -> dict[str, Any]:
        now = utcnow()
        return {
            "_id": LOCK_ID,
            "owner": self.owner,
            "migration": self.migration,
            "run_id": self.run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": now,
            "expires_at": now + timedelta(seconds=self.ttl_s),
        }

    def acquire(self) -> MigrationLock:
        from pymongo.errors import DuplicateKeyError

        self.collection.create_index("expires_at", expireAfterSeconds=0)
        for _ in range(3):
            try:
                self.collection.insert_one(self._document())
                return self
            except DuplicateKeyError:
                holder = self.collection.find_one({"_id": LOCK_ID})
                if holder is None:
                    continue  # released (or expired) in between: try again
                if not is_stale(holder):
                    raise MigrationError(
                        f"database {self.database.name!r} is locked by {describe(holder)}; "
                        "wait for it, or run `ishan migrate unlock` if that run is dead"
                    ) from None
                taken = self.collection.find_one_and_replace(
                    {"_id": LOCK_ID, "owner": holder["owner"]}, self._document()
                )
                if taken is not None:
                    return self
        raise MigrationError(f"could not take the lock on database {self.database.name!r}")

    def renew(self, every_s: float | None = None) -> None:
        """Extend the expiry (at most once per `every_s`, default a third of the TTL)."""
        now = utcnow()
        if (now - self._renewed_at).total_seconds() < (every_s or self.ttl_s / 3):
            return
        result = self.collection.update_one(
            {"_id": LOCK_ID, "owner": self.owner},
            {"$set": {"expires_at": now + timedelta(seconds=self.ttl_s)}},
        )
        if result.matched_count == 0:
            raise MigrationError(
                "lost the migration lock (expired or removed with `ishan migrate unlock`); "
                "stopped before writing the next batch: continue with --resume"
            )
        self._renewed_at = now

    def release(self) -> None:
        self.collection.delete_one({"_id": LOCK_ID, "owner": self.owner})


def current_holder(database: Any) -> dict[str, Any] | None:
    """The lock document, if a run holds (or left) one."""
    holder: dict[str, Any] | None = database[LOCKS].find_one({"_id": LOCK_ID})
    return holder


def force_unlock(database: Any) -> dict[str, Any] | None:
    """Remove the lock whoever holds it; returns what was removed."""
    removed: dict[str, Any] | None = database[LOCKS].find_one_and_delete({"_id": LOCK_ID})
    return removed
