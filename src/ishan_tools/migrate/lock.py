"""The database-wide migration lock: one document in `_ishan_locks` with an owner and a TTL.

One migration at a time, with several participants: the run that takes the lock lists itself
in `participants`, publishes the run's settings, and any process that joins (`--join`, or a
local worker) adds itself; each one's heartbeat pushes the expiry forward. `stop` asks every
participant to stop (a failed document, Ctrl-C on the run that started it).

Acquiring inserts the document (the unique `_id` makes it atomic). A lock past its expiry, or
whose participants all ran on this host and no longer exist (a killed run), is taken over
with a compare-and-swap on its owner. MongoDB's TTL index removes expired locks on its own too.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
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
    members = holder.get("participants") or []
    more = f", {len(members)} participants" if len(members) > 1 else ""
    return (
        f"migration {holder.get('migration')!r} (run {holder.get('run_id')}, pid "
        f"{holder.get('pid')} on {holder.get('host')}{more}) since {holder.get('acquired_at')}"
        f", expires {holder.get('expires_at')}"
    )


def gone(host: Any, pid: Any) -> bool:
    """A process of this host that no longer exists (one elsewhere is never known gone)."""
    return host == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid)


def is_stale(holder: dict[str, Any]) -> bool:
    """Expired, or every participant ran on this host and no longer exists (a killed run)."""
    if holder.get("expires_at") is not None and holder["expires_at"] < utcnow():
        return True
    members = holder.get("participants") or [holder]
    return all(gone(member.get("host"), member.get("pid")) for member in members)


@dataclass
class MigrationLock:
    """A held lock; `release()` drops it (participants renew it with `renew_run`)."""

    database: Any
    migration: str
    run_id: str
    ttl_s: float = DEFAULT_TTL_S
    details: dict[str, Any] = field(default_factory=dict)
    """More fields of the lock document (the run's checksum and first participant)."""

    def __post_init__(self) -> None:
        self.owner = uuid.uuid4().hex

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
            **self.details,
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
                same = holder.get("migration") == self.migration and "checksum" in self.details
                if same and not is_stale(holder):
                    raise MigrationError(
                        f"{self.migration} is already running in database {self.database.name!r}"
                        f" ({describe(holder)}): add --join to take part, or wait for it"
                    ) from None
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

    def release(self) -> None:
        self.collection.delete_one({"_id": LOCK_ID, "owner": self.owner})

    def publish(self, settings: dict[str, Any]) -> None:
        """Make the run joinable: its settings, for every participant to take."""
        self.collection.update_one(
            {"_id": LOCK_ID, "owner": self.owner}, {"$set": {"settings": settings}}
        )


def run_holder(database: Any, run_id: str) -> dict[str, Any] | None:
    """The lock document while run `run_id` holds it."""
    holder: dict[str, Any] | None = database[LOCKS].find_one({"_id": LOCK_ID, "run_id": run_id})
    return holder


def join(database: Any, run_id: str, member: dict[str, Any]) -> bool:
    """Add a participant to the run; False if the run no longer holds the lock."""
    entry = {"id": member["id"], "host": member["host"], "pid": member["pid"]}
    result = database[LOCKS].update_one(
        {"_id": LOCK_ID, "run_id": run_id}, {"$push": {"participants": entry}}
    )
    return bool(result.matched_count)


def leave(database: Any, run_id: str, member_id: str) -> None:
    database[LOCKS].update_one(
        {"_id": LOCK_ID, "run_id": run_id}, {"$pull": {"participants": {"id": member_id}}}
    )


def renew_run(database: Any, run_id: str, ttl_s: float) -> dict[str, Any] | None:
    """Push the run's lock expiry forward; the lock's `stop` request, or None if it is gone."""
    holder: dict[str, Any] | None = database[LOCKS].find_one_and_update(
        {"_id": LOCK_ID, "run_id": run_id},
        {"$set": {"expires_at": utcnow() + timedelta(seconds=ttl_s)}},
        projection={"stop": 1},
    )
    return holder


def request_stop(database: Any, run_id: str, status: str, reason: str) -> None:
    """Ask every participant of the run to stop (the first request's reason is kept)."""
    database[LOCKS].update_one(
        {"_id": LOCK_ID, "run_id": run_id, "stop": None},
        {"$set": {"stop": {"status": status, "reason": reason}}},
    )


def release_run(database: Any, run_id: str) -> None:
    database[LOCKS].delete_one({"_id": LOCK_ID, "run_id": run_id})


def current_holder(database: Any) -> dict[str, Any] | None:
    """The lock document, if a run holds (or left) one."""
    holder: dict[str, Any] | None = database[LOCKS].find_one({"_id": LOCK_ID})
    return holder


def force_unlock(database: Any) -> dict[str, Any] | None:
    """Remove the lock whoever holds it; returns what was removed."""
    removed: dict[str, Any] | None = database[LOCKS].find_one_and_delete({"_id": LOCK_ID})
    return removed
