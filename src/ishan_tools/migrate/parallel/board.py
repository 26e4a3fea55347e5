"""The partitions of one plan as one participant uses them: claims, leases, checkpoints, splits.

A worker takes a pending partition, or a leased one whose lease ran out (its worker died), with
one find-and-modify, so a partition never has two workers. An idle worker asks the owner of the
largest remaining partition to split it; the owner cuts it at its next batch boundary, beyond
what it has read. The documents' fields are drawn in `partitions`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo import ReturnDocument

from ishan_tools.migrate.lock import utcnow
from ishan_tools.migrate.parallel.partitions import (
    DONE,
    HELD,
    LEASED,
    PARTITIONS,
    PENDING,
    Partition,
    Span,
    new_document,
)


class LeaseLost(Exception):
    """This worker's lease on a partition expired and another worker took it over."""


class Board:
    """The partitions of one plan, as one participant uses them (claims, leases, splits)."""

    def __init__(self, database: Any, migration: str, plan: str, member: dict[str, Any]) -> None:
        self.collection = database[PARTITIONS]
        self.migration, self.plan = migration, plan
        self.owner = member["id"]
        self.host, self.pid = member["host"], member["pid"]

    def _scope(self, **more: Any) -> dict[str, Any]:
        return {"m": self.migration, "plan": self.plan, **more}

    def claim(self, lease_s: float) -> tuple[Partition, bool] | None:
        """Lease a pending partition, or one whose lease ran out; (partition, taken over)."""
        now = utcnow()
        doc = self.collection.find_one_and_update(
            self._scope(
                **{
                    "$or": [
                        {"state": PENDING},
                        {"state": LEASED, "expires_at": {"$lt": now}},
                    ]
                }
            ),
            {
                "$set": {
                    "state": LEASED,
                    "owner": self.owner,
                    "host": self.host,
                    "pid": self.pid,
                    "expires_at": now + timedelta(seconds=lease_s),
                    "split_wanted": False,
                }
            },
            sort=[("_id", 1)],
            return_document=ReturnDocument.BEFORE,
        )
        if doc is None:
            return None
        taken_over = doc["state"] == LEASED
        if doc.get("spill"):  # its worker died while splitting it: finish the split
            self._write_spill(doc["_id"], doc["spill"])
        return Partition.from_document(doc), taken_over

    def renew(self, partition_id: Any, lease_s: float) -> bool:
        result = self.collection.update_one(
            {"_id": partition_id, "owner": self.owner},
            {"$set": {"expires_at": utcnow() + timedelta(seconds=lease_s)}},
        )
        return bool(result.matched_count)

    def checkpoint(
        self,
        partition: Partition,
        *,
        after: Any,
        has_after: bool,
        batch: int,
        passed: int,
        processed: int,
        errors: int,
        lease_s: float,
        run_id: str,
    ) -> bool:
        """Record a written batch (one update, so checkpoint, done_batch and the run's counts
        agree even if the worker dies right after); returns whether another worker asked for
        a split. Raises LeaseLost if the lease is gone."""
        fields: dict[str, Any] = {
            "done_batch": batch,
            "expires_at": utcnow() + timedelta(seconds=lease_s),
        }
        if has_after:
            fields["checkpoint"] = {"after": after}
        doc = self.collection.find_one_and_update(
            {"_id": partition.id, "owner": self.owner},
            {
                "$set": fields,
                "$inc": {
                    "done": passed,
                    "processed": processed,
                    "errors": errors,
                    f"by_run.{run_id}.processed": processed,
                    f"by_run.{run_id}.errors": errors,
                },
            },
            projection={"split_wanted": 1, "done": 1},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise LeaseLost(partition.label)
        partition.done_batch, partition.done = batch, int(doc["done"])
        if has_after:
            partition.checkpoint = {"after": after}
        return bool(doc.get("split_wanted"))

    def split(self, partition: Partition, database: Any, primary: str, filter_doc: Any) -> bool:
        """Cut the rest of our partition in two at its middle `_id`; the second half becomes a
        pending partition. False when it is too small or nothing is left."""
        half = partition.remaining // 2
        middle = None
        if half > 0:
            cursor = database[primary].find(partition.query(filter_doc), {"_id": 1})
            found = list(cursor.sort("_id", 1).skip(half).limit(1))
            middle = found[0]["_id"] if found else None
        if middle is None:
            self.collection.update_one({"_id": partition.id}, {"$set": {"split_wanted": False}})
            return False
        splits = partition.splits + 1
        child = new_document(
            self.migration,
            self.plan,
            f"{partition.label}.{splits}",
            [*partition.key, -splits],
            Span(middle, partition.hi, partition.hi_inclusive, partition.remaining - half),
        )
        mine = partition.done + half
        result = self.collection.update_one(  # shrink and note the spill in one update
            {"_id": partition.id, "owner": self.owner},
            {
                "$set": {
                    "hi": middle,
                    "hi_inclusive": False,
                    "count": mine,
                    "split_wanted": False,
                    "splits": splits,
                    "spill": child,
                }
            },
        )
        if not result.matched_count:
            raise LeaseLost(partition.label)
        self._write_spill(partition.id, child)
        partition.hi, partition.hi_inclusive, partition.count = middle, False, mine
        partition.splits = splits
        return True

    def _write_spill(self, parent_id: Any, child: dict[str, Any]) -> None:
        self.collection.update_one({"_id": child["_id"]}, {"$setOnInsert": child}, upsert=True)
        self.collection.update_one({"_id": parent_id}, {"$unset": {"spill": ""}})

    def release(self, partition: Partition) -> None:
        """Give the partition back (its worker stops); the next one restores a batch cut short."""
        self.collection.update_one(
            {"_id": partition.id, "owner": self.owner},
            {"$set": {"state": PENDING, "owner": None, "expires_at": None}},
        )

    def finish(self, partition: Partition) -> None:
        self.collection.update_one(
            {"_id": partition.id, "owner": self.owner},
            {"$set": {"state": DONE, "owner": None, "expires_at": None, "finished_at": utcnow()}},
        )

    def request_split(self, min_remaining: int) -> bool:
        """Ask the owner of the largest live partition with work left to split it."""
        if self.collection.count_documents(self._scope(split_wanted=True, state=LEASED)):
            return True  # one request at a time: the owner answers within a batch
        now = utcnow()
        live = self.collection.find(
            self._scope(state=LEASED, expires_at={"$gt": now}), {"count": 1, "done": 1}
        )
        sizes = [(int(d["count"]) - int(d.get("done", 0)), d["_id"]) for d in live]
        sizes = [(size, pid) for size, pid in sizes if size >= min_remaining]
        if not sizes:
            return False
        _size, pid = max(sizes, key=lambda pair: pair[0])
        self.collection.update_one({"_id": pid, "state": LEASED}, {"$set": {"split_wanted": True}})
        return True

    def unfinished(self) -> int:
        """Partitions of this run still to do (held ones are not part of the run)."""
        count: int = self.collection.count_documents(self._scope(state={"$in": [PENDING, LEASED]}))
        return count

    def held(self) -> int:
        count: int = self.collection.count_documents(self._scope(state=HELD))
        return count

    def progress(self) -> tuple[int, int]:
        """(documents passed, documents planned) over the partitions of this run."""
        done = total = 0
        for doc in self.collection.find(self._scope(state={"$ne": HELD}), {"count": 1, "done": 1}):
            done, total = done + int(doc.get("done", 0)), total + int(doc["count"])
        return done, total
