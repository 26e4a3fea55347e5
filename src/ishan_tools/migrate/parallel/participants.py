"""Participants of a run: one document each in `_ishan_participants`, and their heartbeat.

    {_id, m: migration, run_id, role: worker | supervisor, host, pid, log, state: working |
     left, partition: the label it holds, started_at, heartbeat_at, left_at,
     processed, errors, restored, failed_documents, operations, results}

A worker rewrites its counts after every batch it writes, so the run's summary (their sum)
and `ishan migrate status` are right across machines, even for a worker that was killed.
The heartbeat, a thread of each participant, renews the participant, the lock and the lease
of the partition it holds, and reads the lock's stop request.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from ishan_tools.migrate import lock
from ishan_tools.migrate.lock import gone, utcnow
from ishan_tools.migrate.parallel.board import Board, LeaseLost
from ishan_tools.migrate.report import DocumentError, RunSummary, Tally

PARTICIPANTS = "_ishan_participants"
WORKER, SUPERVISOR = "worker", "supervisor"


def new_member(role: str) -> dict[str, Any]:
    """This process as a participant: a fresh id, its host and pid."""
    return {
        "id": secrets.token_hex(6),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "role": role,
    }


def register(
    database: Any, migration: str, run_id: str, member: dict[str, Any], log: str | None
) -> None:
    now = utcnow()
    database[PARTICIPANTS].insert_one(
        {
            "_id": member["id"],
            "m": migration,
            "run_id": run_id,
            "role": member["role"],
            "host": member["host"],
            "pid": member["pid"],
            "log": log,
            "state": "working",
            "partition": None,
            "started_at": now,
            "heartbeat_at": now,
            **_counts(None),
        }
    )


def _counts(summary: RunSummary | None) -> dict[str, Any]:
    if summary is None:
        return {"processed": 0, "errors": 0, "restored": 0, "failed_documents": []}
    return {
        "processed": summary.processed,
        "errors": summary.error_count,
        "restored": summary.restored,
        "failed_documents": [{"_id": e.doc_id, "error": e.error} for e in summary.errors],
        "operations": summary.operations.as_rows(),
        "results": summary.results.as_rows(),
    }


def report(database: Any, member_id: str, summary: RunSummary, partition: str | None) -> None:
    """Rewrite this participant's counts (after each batch it wrote)."""
    fields = {**_counts(summary), "partition": partition, "heartbeat_at": utcnow()}
    database[PARTICIPANTS].update_one({"_id": member_id}, {"$set": fields})


def holding(database: Any, member_id: str, partition: str | None) -> None:
    """The partition this participant works on now, for `status`."""
    fields = {"partition": partition, "heartbeat_at": utcnow()}
    database[PARTICIPANTS].update_one({"_id": member_id}, {"$set": fields})


def leave(database: Any, member_id: str, summary: RunSummary | None) -> None:
    fields: dict[str, Any] = {"state": "left", "left_at": utcnow(), "partition": None}
    if summary is not None:
        fields |= _counts(summary)
    database[PARTICIPANTS].update_one({"_id": member_id}, {"$set": fields})


def of_run(database: Any, run_id: str) -> list[dict[str, Any]]:
    return list(database[PARTICIPANTS].find({"run_id": run_id}).sort("started_at", 1))


def alive(doc: dict[str, Any], lease_s: float) -> bool:
    """Working, heard from within a lease, and not a process of this host that is gone."""
    if doc.get("state") == "left" or gone(doc.get("host"), doc.get("pid")):
        return False
    heard: datetime | None = doc.get("heartbeat_at")
    return heard is not None and heard > utcnow() - timedelta(seconds=lease_s)


def live_members(database: Any, members: Iterable[dict[str, Any]], lease_s: float) -> list[str]:
    """The ids, among the lock's participants, of those still alive."""
    ids = [member["id"] for member in members]
    docs = {doc["_id"]: doc for doc in database[PARTICIPANTS].find({"_id": {"$in": ids}})}
    return [pid for pid in ids if pid in docs and alive(docs[pid], lease_s)]


def processed_by_migration(database: Any) -> dict[str, int]:
    totals: dict[str, int] = {}
    for doc in database[PARTICIPANTS].find({}, {"m": 1, "processed": 1}):
        totals[doc["m"]] = totals.get(doc["m"], 0) + int(doc.get("processed", 0))
    return totals


def add_up(docs: Iterable[dict[str, Any]], summary: RunSummary) -> RunSummary:
    """Fill `summary` with the sum of the participants' counts."""
    for doc in docs:
        summary.processed += int(doc.get("processed", 0))
        summary.error_count += int(doc.get("errors", 0))
        summary.restored += int(doc.get("restored", 0))
        for failed in doc.get("failed_documents", []):
            if len(summary.errors) < 100:
                summary.errors.append(DocumentError(failed["_id"], failed["error"]))
        summary.operations.merge(Tally.from_rows(doc.get("operations", [])))
        summary.results.merge(Tally.from_rows(doc.get("results", [])))
        if doc.get("log"):
            here = doc.get("host") == socket.gethostname()
            summary.logs.append(doc["log"] if here else f"{doc.get('host')}:{doc['log']}")
    summary.logs.sort()
    return summary


class Heartbeat(threading.Thread):
    """Renews this participant, the run's lock and the lease it holds, every third of a lease."""

    def __init__(
        self,
        database: Any,
        run_id: str,
        member_id: str,
        board: Board | None,
        lease_s: float,
        lock_ttl_s: float,
    ) -> None:
        super().__init__(name=f"ishan-heartbeat-{member_id}", daemon=True)
        self.database, self.run_id, self.member_id, self.board = database, run_id, member_id, board
        self.lease_s, self.lock_ttl_s = lease_s, lock_ttl_s
        self.stop_requested = threading.Event()
        self._quit = threading.Event()
        self._guard = threading.Lock()
        self._holding: Any = None
        self._lost: Any = None
        self._renewed = time.monotonic()

    def hold(self, partition_id: Any) -> None:
        """The partition this participant works on now (None: none)."""
        with self._guard:
            self._holding, self._lost = partition_id, None
            self._renewed = time.monotonic()

    def check(self) -> None:
        """Before a write: raise LeaseLost if the lease is gone, or was last renewed more than
        half a lease ago (then a write could still land after another worker took over)."""
        with self._guard:
            lost = self._lost is not None and self._lost == self._holding
            late = time.monotonic() - self._renewed > self.lease_s / 2
        if self._holding is not None and (lost or late):
            raise LeaseLost(str(self._holding))

    def run(self) -> None:
        interval = max(min(self.lease_s, self.lock_ttl_s) / 3, 0.05)
        while not self._quit.wait(interval):
            try:
                self.beat()
            except Exception:  # the server may be briefly away; the lease tells the rest
                continue

    def beat(self) -> None:
        holder = lock.renew_run(self.database, self.run_id, self.lock_ttl_s)
        if holder is None or holder.get("stop"):
            self.stop_requested.set()
        self.database[PARTICIPANTS].update_one(
            {"_id": self.member_id}, {"$set": {"heartbeat_at": utcnow()}}
        )
        with self._guard:
            holding = self._holding
        if holding is not None and self.board is not None:
            kept = self.board.renew(holding, self.lease_s)
            with self._guard:
                if holding == self._holding:
                    if kept:
                        self._renewed = time.monotonic()
                    else:
                        self._lost = holding

    def close(self) -> None:
        self._quit.set()
        if self.is_alive():
            self.join(timeout=5)
