"""`--max-rate`: one rate limit for a whole run, across its workers and machines.

One document per migration in `_ishan_throttle`, next to the partitions:

    {_id: migration, run_id, rate: documents per second (0: no limit),
     tat: the bucket's clock (seconds since the epoch), version: bumped at each change,
     set_at, set_by}

It is a token bucket of one second's worth of documents, kept as its "theoretical arrival
time" (`tat`, the form known as GCRA): the bucket is full when `tat <= now`, and taking `n`
tokens moves `tat` on by `n / rate`. A worker takes the tokens of a batch (the documents whose
callbacks it is about to run) with two atomic updates, `$max: {tat: now}` then
`$inc: {tat: n / rate}`, so workers never overwrite each other; it then waits until
`tat - 1 s` (at most one second's worth runs ahead of the rate). While a limit is set,
batches shrink to at most rate / 4 documents, so the waits stay short and even.

`ishan migrate throttle NAME RATE` sets `rate`, resets `tat` to now and bumps `version`;
a worker waiting on its tokens sees the change within a quarter of a second and takes them
again at the new rate; an unlimited worker reads the document at most once a second.

Times are the workers' own clocks: machines sharing a run should keep their clocks in step
(NTP); a skew of d seconds between two machines shifts the limit by about d seconds' worth.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pymongo import ReturnDocument

from ishan_tools.migrate.lock import utcnow

THROTTLE = "_ishan_throttle"
BURST_S = 1.0
"""The bucket holds one second's worth of documents."""
BATCH_SHARE = 4
"""While limited, batches hold at most rate / BATCH_SHARE documents."""
POLL_S = 0.25
"""How often a waiting worker looks for a change of the limit."""
REFRESH_S = 1.0
"""How often an unlimited worker looks for a limit set on its running migration."""


def open_bucket(database: Any, migration: str, run_id: str, rate: float | None) -> None:
    """Start run `run_id` with `rate` (None or 0: no limit) and a full bucket."""
    database[THROTTLE].replace_one(
        {"_id": migration},
        {
            "_id": migration,
            "run_id": run_id,
            "rate": float(rate or 0),
            "tat": time.time(),
            "version": 0,
            "set_at": utcnow(),
            "set_by": "run",
        },
        upsert=True,
    )


def current_rate(database: Any, migration: str, run_id: str | None = None) -> float:
    """The limit of `migration`'s run (`run_id`'s, if given) in documents per second; 0: none.
    (What a metrics gauge of the limit reads.)"""
    query: dict[str, Any] = {"_id": migration}
    if run_id is not None:
        query["run_id"] = run_id
    doc = database[THROTTLE].find_one(query, {"rate": 1})
    return 0.0 if doc is None else float(doc.get("rate") or 0)


def set_rate(database: Any, migration: str, run_id: str, rate: float) -> float | None:
    """Change the limit of run `run_id` now; the previous limit, or None if that run has no
    bucket (it started before this version, or it has ended)."""
    doc = database[THROTTLE].find_one_and_update(
        {"_id": migration, "run_id": run_id},
        {
            "$set": {"rate": float(rate), "tat": time.time(), "set_at": utcnow(), "set_by": "cli"},
            "$inc": {"version": 1},
        },
        projection={"rate": 1},
        return_document=ReturnDocument.BEFORE,
    )
    return None if doc is None else float(doc.get("rate") or 0)


def drop(database: Any, migration: str) -> None:
    database[THROTTLE].delete_one({"_id": migration})


def burst_s(rate: float) -> float:
    """How far ahead of the rate a worker may run: one second, or one document if longer."""
    return max(BURST_S, 1 / rate)


def batch_cap(rate: float, batch_size: int) -> int:
    """Documents per batch under `rate` (0: no limit)."""
    if rate <= 0:
        return batch_size
    return max(1, min(batch_size, int(rate // BATCH_SHARE)))


class Throttle:
    """One worker's side of the run's bucket: `take(n)` before running n callbacks.

    `rate` is the limit as this worker last read it (0: none); `stop`, when set, ends a wait
    early (the run is stopping).
    """

    def __init__(
        self,
        database: Any,
        migration: str,
        run_id: str,
        *,
        stop: threading.Event | None = None,
    ) -> None:
        self.collection = database[THROTTLE]
        self.migration, self.run_id = migration, run_id
        self.stop = stop or threading.Event()
        self.rate = 0.0
        self.version: int | None = None
        self.waited_s = 0.0
        self._read_at = float("-inf")
        self.refresh()

    @property
    def _scope(self) -> dict[str, Any]:
        return {"_id": self.migration, "run_id": self.run_id}

    def refresh(self) -> None:
        """Read the limit now."""
        doc = self.collection.find_one(self._scope, {"rate": 1, "version": 1})
        self._read_at = time.monotonic()
        if doc is not None:
            self.rate, self.version = float(doc.get("rate") or 0), int(doc.get("version", 0))

    def batch_cap(self, batch_size: int) -> int:
        """The batch size to use now (refreshes the limit at most once a second)."""
        if time.monotonic() - self._read_at >= REFRESH_S:
            self.refresh()
        return batch_cap(self.rate, batch_size)

    def take(self, count: int) -> None:
        """Take `count` tokens, waiting as long as the run's limit asks (a batch read before
        the limit was set or lowered takes its tokens a rate / 4 at a time)."""
        if self.rate <= 0 and time.monotonic() - self._read_at >= REFRESH_S:
            self.refresh()
        while count > 0 and self.rate > 0 and not self.stop.is_set():
            chunk = batch_cap(self.rate, count)
            if self._take(chunk):
                count -= chunk

    def _take(self, count: int) -> bool:
        """Take `count` tokens and wait for them; False if the limit changed first."""
        version, rate = self.version, self.rate
        self.collection.update_one(self._scope, {"$max": {"tat": time.time()}})
        doc = self.collection.find_one_and_update(
            {**self._scope, "version": version},
            {"$inc": {"tat": count / rate}},
            projection={"tat": 1},
            return_document=ReturnDocument.AFTER,
        )
        self._read_at = time.monotonic()
        if doc is None:  # the limit changed (or the run's bucket is gone): read it again
            self.refresh()
            if self.version == version:  # gone: run on without a limit
                self.rate = 0.0
            return False
        return self._wait_until(float(doc["tat"]) - burst_s(rate), version)

    def _wait_until(self, start: float, version: int | None) -> bool:
        """Sleep until `start` (epoch seconds); False if the limit changed meanwhile (the
        tokens are taken again at the new rate)."""
        began = time.monotonic()
        try:
            while True:
                left = start - time.time()
                if left <= 0 or self.stop.is_set():
                    return True
                if self.stop.wait(min(left, POLL_S)):
                    return True
                if start - time.time() <= 0:
                    return True
                self.refresh()
                if self.version != version:
                    return False
        finally:
            self.waited_s += time.monotonic() - began


class LocalThrottle(Throttle):
    """The same limit kept in this process (a dry run, which records nothing in the database)."""

    def __init__(self, rate: float, *, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()
        self.rate, self.version, self.waited_s = float(rate), 0, 0.0
        self._read_at = float("inf")  # nothing to read: the limit never changes
        self._tat = time.time()

    def refresh(self) -> None:
        return

    def take(self, count: int) -> None:
        if count <= 0 or self.rate <= 0:
            return
        while count > 0:
            chunk = batch_cap(self.rate, count)
            self._tat = max(self._tat, time.time()) + chunk / self.rate
            self._wait_until(self._tat - burst_s(self.rate), self.version)
            count -= chunk
