"""Partitions: `_id` ranges of the primary collection, planned here and handed to workers
under leases by `board.Board`.

One document per partition in `_ishan_partitions`, next to the changelog:

    {_id, m: migration, plan: the run id that made the plan, label: "2.1", key: [2, -1],
     lo, hi, hi_inclusive: the range lo <= _id < hi (or <= hi),
     count: documents planned, done: documents passed, processed, errors,
     checkpoint: {after: last _id done} | None, done_batch: last batch written,
     state: pending | leased | done | held, owner, host, pid, expires_at: the lease,
     split_wanted, splits, spill: a split being written}

`held` partitions lie beyond `--limit`; a later `--resume` opens them. `key` sorts partitions
in `_id` order (a split's second half follows its first half and precedes the parent's earlier
splits), which `--limit` on a resume relies on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId

from ishan_tools.migrate.query import id_range

PARTITIONS = "_ishan_partitions"
PENDING, LEASED, DONE, HELD = "pending", "leased", "done", "held"


@dataclass(frozen=True)
class Span:
    """A planned range: lo <= _id < hi (<= hi when `hi_inclusive`) holding `count` documents."""

    lo: Any
    hi: Any
    hi_inclusive: bool
    count: int


@dataclass
class Plan:
    """How the documents present at the start split: `spans` now, `rest` beyond `--limit`."""

    spans: list[Span] = field(default_factory=list)
    rest: Span | None = None

    @property
    def count(self) -> int:
        return sum(span.count for span in self.spans)


def split_ids(ids: Iterable[Any], parts: int, limit: int | None = None) -> Plan:
    """Cut `_id`s (sorted, one pass) into up to `parts` spans of equal size over the first
    `limit`; memory stays bounded: every `step`-th `_id` is kept, `step` doubling as needed."""
    cap = max(4096, 256 * parts)
    samples: list[Any] = []
    step, count, rest_count = 1, 0, 0
    last = rest_first = rest_last = None
    for doc_id in ids:
        if limit is not None and count >= limit:
            if rest_count == 0:
                rest_first = doc_id
            rest_last, rest_count = doc_id, rest_count + 1
            continue
        if count % step == 0:
            samples.append(doc_id)
            if len(samples) > cap:
                samples, step = samples[::2], step * 2
        last, count = doc_id, count + 1
    plan = Plan()
    if rest_count:
        plan.rest = Span(rest_first, rest_last, True, rest_count)
    if count == 0:
        return plan
    wanted = min(parts, count)
    starts = sorted({(k * count // wanted) // step * step for k in range(wanted)})
    for index, start in enumerate(starts):
        lo = samples[start // step]
        if index + 1 < len(starts):
            end = starts[index + 1]
            plan.spans.append(Span(lo, samples[end // step], False, end - start))
        else:
            plan.spans.append(Span(lo, last, True, count - start))
    return plan


def scan_plan(
    database: Any, primary: str, filter_doc: Mapping[str, Any], parts: int, limit: int | None
) -> Plan:
    """One `_id`-only pass over the primary collection (after the script's filter)."""
    cursor = database[primary].find(dict(filter_doc), {"_id": 1}).sort("_id", 1)
    with cursor.batch_size(10_000) as ids:
        return split_ids((doc["_id"] for doc in ids), parts, limit)


def new_document(
    migration: str, plan: str, label: str, key: list[int], span: Span
) -> dict[str, Any]:
    """A pending partition's document, not stored yet."""
    return {
        "_id": ObjectId(),
        "m": migration,
        "plan": plan,
        "label": label,
        "key": key,
        "lo": span.lo,
        "hi": span.hi,
        "hi_inclusive": span.hi_inclusive,
        "count": span.count,
        "done": 0,
        "processed": 0,
        "errors": 0,
        "checkpoint": None,
        "done_batch": 0,
        "state": PENDING,
        "owner": None,
        "expires_at": None,
        "split_wanted": False,
        "splits": 0,
    }


def create(database: Any, migration: str, plan_id: str, plan: Plan) -> None:
    """Store a new plan's partitions, replacing any older plan of the migration."""
    collection = database[PARTITIONS]
    collection.delete_many({"m": migration})
    documents = [
        new_document(migration, plan_id, str(n), [n], span) for n, span in enumerate(plan.spans, 1)
    ]
    if plan.rest is not None:
        n = len(plan.spans) + 1
        documents.append(
            {**new_document(migration, plan_id, str(n), [n], plan.rest), "state": HELD}
        )
    if documents:
        collection.insert_many(documents)
    collection.create_index([("m", 1), ("plan", 1), ("state", 1)])


@dataclass
class Partition:
    """A partition as its worker sees it while it holds the lease."""

    id: Any
    label: str
    key: list[int]
    lo: Any
    hi: Any
    hi_inclusive: bool
    count: int
    done: int
    checkpoint: dict[str, Any] | None
    done_batch: int
    splits: int

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Partition:
        return cls(
            doc["_id"],
            str(doc["label"]),
            list(doc.get("key", [])),
            doc["lo"],
            doc["hi"],
            bool(doc["hi_inclusive"]),
            int(doc["count"]),
            int(doc.get("done", 0)),
            doc.get("checkpoint"),
            int(doc.get("done_batch", 0)),
            int(doc.get("splits", 0)),
        )

    @classmethod
    def in_memory(cls, number: int, span: Span) -> Partition:
        """A partition nobody leases (a dry run's)."""
        return cls(
            None,
            str(number),
            [number],
            span.lo,
            span.hi,
            span.hi_inclusive,
            span.count,
            0,
            None,
            0,
            0,
        )

    @property
    def remaining(self) -> int:
        return max(self.count - self.done, 0)

    def query(self, filter_doc: Mapping[str, Any]) -> dict[str, Any]:
        """The documents of the partition not done yet (after the script's filter)."""
        start = self.checkpoint
        return id_range(
            filter_doc,
            low=self.lo if start is None else start["after"],
            low_inclusive=start is None,
            high=self.hi,
            high_inclusive=self.hi_inclusive,
        )


def counts_by_run(database: Any, migration: str, plan: str) -> dict[str, dict[str, int]]:
    """{run_id: {"processed", "errors"}} as each run checkpointed them, over the plan's
    partitions: written with each batch, so a killed run's counts are exact too."""
    totals: dict[str, dict[str, int]] = {}
    for doc in database[PARTITIONS].find({"m": migration, "plan": plan}, {"by_run": 1}):
        for run_id, counts in doc.get("by_run", {}).items():
            total = totals.setdefault(run_id, {"processed": 0, "errors": 0})
            total["processed"] += int(counts.get("processed", 0))
            total["errors"] += int(counts.get("errors", 0))
    return totals


def counts_of_run(database: Any, migration: str, plan: str, run_id: str) -> tuple[int, int] | None:
    """(processed, errors) the run checkpointed, summed over the plan's partitions: exact
    even when a worker was killed before it reported its own counts; None without a plan."""
    docs = list(database[PARTITIONS].find({"m": migration, "plan": plan}, {"by_run": 1}))
    if not docs:
        return None
    counts = [doc.get("by_run", {}).get(run_id, {}) for doc in docs]
    return (
        sum(int(c.get("processed", 0)) for c in counts),
        sum(int(c.get("errors", 0)) for c in counts),
    )


def run_figures(database: Any, migration: str, plan: str) -> dict[str, int]:
    """The plan's partitions (held ones left out), those done and those leased, the documents
    planned and passed: the run-wide figures that `ishan migrate run --metrics-port` serves."""
    figures = dict.fromkeys(("partitions", "partitions_done", "leased", "planned", "passed"), 0)
    fields = {"state": 1, "count": 1, "done": 1}
    for doc in database[PARTITIONS].find({"m": migration, "plan": plan}, fields):
        if doc.get("state") == HELD:
            continue
        figures["partitions"] += 1
        figures["partitions_done"] += doc.get("state") == DONE
        figures["leased"] += doc.get("state") == LEASED
        figures["planned"] += int(doc.get("count", 0))
        figures["passed"] += int(doc.get("done", 0))
    return figures


def documents(database: Any, migration: str, plan: str) -> list[dict[str, Any]]:
    """Every partition of the plan, in `_id` order (for status)."""
    docs = list(database[PARTITIONS].find({"m": migration, "plan": plan}))
    return sorted(docs, key=lambda doc: list(doc.get("key", [])))


def reopen(
    database: Any, migration: str, plan: str, primary: str, filter_doc: Any, limit: int | None
) -> None:
    """Resume: every unfinished partition pending again (their workers are gone); with
    `limit`, only those holding the next `limit` documents, cutting one where it is reached."""
    collection = database[PARTITIONS]
    unfinished = [d for d in documents(database, migration, plan) if d["state"] != DONE]
    budget = limit
    for doc in unfinished:
        state = PENDING
        if budget is not None:
            partition = Partition.from_document(doc)
            left = database[primary].count_documents(partition.query(filter_doc))
            if budget <= 0:
                state = HELD
            elif left > budget:
                _cut(database, migration, plan, primary, filter_doc, doc, partition, budget)
                budget = 0
            else:
                budget -= left
        collection.update_one(
            {"_id": doc["_id"]},
            {"$set": {"state": state, "owner": None, "expires_at": None, "split_wanted": False}},
        )


def _cut(
    database: Any,
    migration: str,
    plan: str,
    primary: str,
    filter_doc: Any,
    doc: dict[str, Any],
    partition: Partition,
    keep: int,
) -> None:
    """Split a partition nobody holds after its next `keep` documents; the rest is held."""
    found = list(
        database[primary]
        .find(partition.query(filter_doc), {"_id": 1})
        .sort("_id", 1)
        .skip(keep)
        .limit(1)
    )
    if not found:
        return
    middle, splits = found[0]["_id"], partition.splits + 1
    rest = Span(middle, partition.hi, partition.hi_inclusive, max(partition.remaining - keep, 1))
    child = new_document(
        migration, plan, f"{partition.label}.{splits}", [*partition.key, -splits], rest
    )
    database[PARTITIONS].insert_one({**child, "state": HELD})
    database[PARTITIONS].update_one(
        {"_id": doc["_id"]},
        {
            "$set": {
                "hi": middle,
                "hi_inclusive": False,
                "count": partition.done + keep,
                "splits": splits,
            }
        },
    )
