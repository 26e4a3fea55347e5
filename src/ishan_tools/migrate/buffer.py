"""Buffered collections: the objects a migration callback writes through.

Write calls (`update_one`, `replace_one`, `insert_one`, `delete_one` and the `*_many` forms)
are queued and sent as one `bulk_write` per collection when the batch is flushed. Any read
on a collection first flushes that collection's queued writes, so a callback always reads
its own writes. Per-operation counts are not known until the flush, and a bulk write only
reports totals, so the results these calls return carry `inserted_id(s)` and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId
from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne
from pymongo.collection import Collection

from ishan_tools.errors import MigrationError

WriteRequest = InsertOne[Any] | UpdateOne | UpdateMany | ReplaceOne[Any] | DeleteOne | DeleteMany

#: Writes a callback cannot make through a buffered collection: they would bypass the
#: before-images that resume and rollback rely on.
UNBUFFERED_WRITES = frozenset(
    {
        "bulk_write",
        "find_one_and_update",
        "find_one_and_replace",
        "find_one_and_delete",
        "drop",
        "rename",
    }
)


@dataclass
class PendingOp:
    """One queued write: the pymongo request plus what imaging and error reports need."""

    kind: str
    request: WriteRequest
    filter: Mapping[str, Any] | None
    source_id: Any
    payload: Any = None
    """The update, replacement or document, for dry-run samples."""
    new_ids: list[Any] = field(default_factory=list)
    pin_id: Callable[[Any], WriteRequest] | None = None
    """For a replace-upsert without a known `_id`: rebuilds the request with the given one."""


class WriteBuffer:
    """Queued writes of one batch, per collection, in call order."""

    def __init__(self, flush: Callable[[list[str]], None]) -> None:
        self.ops: dict[str, list[PendingOp]] = {}
        self.source_id: Any = None
        self._flush = flush
        self._flushes: dict[str, int] = {}

    def add(self, collection: str, op: PendingOp) -> None:
        self.ops.setdefault(collection, []).append(op)

    def mark(self) -> dict[str, tuple[int, int]]:
        """A savepoint: per collection, how many flushes took its ops so far, and its length."""
        return {name: (self._flushes.get(name, 0), len(ops)) for name, ops in self.ops.items()}

    def discard_since(self, mark: Mapping[str, tuple[int, int]]) -> None:
        """Drop every op queued after `mark` (a failed callback leaves nothing behind).

        A flush in between hands out the queued ops and starts afresh: everything queued in a
        collection flushed since the mark was queued after it.
        """
        for name, ops in self.ops.items():
            flushes, length = mark.get(name, (-1, 0))
            del ops[length if flushes == self._flushes.get(name, 0) else 0 :]

    def take(self, names: Iterable[str] | None = None) -> dict[str, list[PendingOp]]:
        """Remove and return the queued ops of `names` (all collections when None)."""
        wanted = list(self.ops) if names is None else list(names)
        taken = {name: self.ops.pop(name) for name in wanted if self.ops.get(name)}
        for name in taken:
            self._flushes[name] = self._flushes.get(name, 0) + 1
        return taken

    def flush(self, names: list[str] | None = None) -> None:
        """Send queued writes now (all collections when `names` is None)."""
        self._flush(list(self.ops) if names is None else names)

    def __len__(self) -> int:
        return sum(len(ops) for ops in self.ops.values())


class BufferedResult:
    """What a buffered write returns: ids known now, counts only after the flush."""

    acknowledged = True

    def __init__(self, kind: str, inserted_ids: list[Any] | None = None) -> None:
        self._kind = kind
        self._inserted_ids = inserted_ids

    @property
    def inserted_id(self) -> Any:
        if self._inserted_ids is None or self._kind != "insert_one":
            return self._unknown("inserted_id")
        return self._inserted_ids[0]

    @property
    def inserted_ids(self) -> list[Any]:
        if self._inserted_ids is None or self._kind != "insert_many":
            return self._unknown("inserted_ids")  # type: ignore[no-any-return]
        return list(self._inserted_ids)

    def _unknown(self, attribute: str) -> Any:
        raise MigrationError(
            f"{self._kind}(...).{attribute} is not known inside a migration: writes are buffered "
            "and sent as one bulk_write per batch; the run summary reports the counts"
        )

    def __getattr__(self, attribute: str) -> Any:
        if attribute in {"matched_count", "modified_count", "deleted_count", "upserted_id"}:
            return self._unknown(attribute)
        raise AttributeError(attribute)


def id_equality(filter_doc: Mapping[str, Any] | None) -> tuple[bool, Any]:
    """(True, value) when the filter pins exactly one `_id` value, else (False, None)."""
    if not filter_doc or "_id" not in filter_doc:
        return False, None
    value = filter_doc["_id"]
    if isinstance(value, Mapping):
        keys = list(value)
        if keys == ["$eq"]:
            return True, value["$eq"]
        if any(str(key).startswith("$") for key in keys):
            return False, None
    return True, value


class BufferedCollection:
    """A pymongo collection whose writes are queued in a `WriteBuffer`."""

    def __init__(self, collection: Collection[Any], buffer: WriteBuffer) -> None:
        self.collection = collection
        self.name = collection.name
        self._buffer = buffer

    def __repr__(self) -> str:
        return f"BufferedCollection({self.name!r})"

    def _queue(self, op: PendingOp) -> None:
        self._buffer.add(self.name, op)

    def _op(
        self, kind: str, request: WriteRequest, filter_doc: Any, payload: Any = None
    ) -> PendingOp:
        return PendingOp(kind, request, filter_doc, self._buffer.source_id, payload)

    def insert_one(self, document: MutableMapping[str, Any]) -> BufferedResult:
        if "_id" not in document:
            document["_id"] = ObjectId()
        op = self._op("insert_one", InsertOne(document), None, document)
        op.new_ids = [document["_id"]]
        self._queue(op)
        return BufferedResult("insert_one", [document["_id"]])

    def insert_many(
        self, documents: Iterable[MutableMapping[str, Any]], ordered: bool = True
    ) -> BufferedResult:
        ids = []
        for document in documents:
            if "_id" not in document:
                document["_id"] = ObjectId()
            ids.append(document["_id"])
            op = self._op("insert_many", InsertOne(document), None, document)
            op.new_ids = [document["_id"]]
            self._queue(op)
        return BufferedResult("insert_many", ids)

    def _update(
        self, kind: str, filter_doc: Mapping[str, Any], update: Any, *, upsert: bool, **kw: Any
    ) -> BufferedResult:
        new_ids: list[Any] = []
        if upsert:
            update, new_ids = _pin_upsert_id(filter_doc, update)
        request_type = UpdateOne if kind == "update_one" else UpdateMany
        request = request_type(filter_doc, update, upsert=upsert, **kw)
        op = self._op(kind, request, filter_doc, update)
        op.new_ids = new_ids
        self._queue(op)
        return BufferedResult(kind)

    def update_one(
        self, filter: Mapping[str, Any], update: Any, upsert: bool = False, **kw: Any
    ) -> BufferedResult:
        return self._update("update_one", filter, update, upsert=upsert, **kw)

    def update_many(
        self, filter: Mapping[str, Any], update: Any, upsert: bool = False, **kw: Any
    ) -> BufferedResult:
        return self._update("update_many", filter, update, upsert=upsert, **kw)

    def replace_one(
        self,
        filter: Mapping[str, Any],
        replacement: MutableMapping[str, Any],
        upsert: bool = False,
        **kw: Any,
    ) -> BufferedResult:
        pinned, value = id_equality(filter)
        request = ReplaceOne(filter, replacement, upsert=upsert, **kw)
        op = self._op("replace_one", request, filter, replacement)
        if upsert and pinned:
            op.new_ids = [value]
        elif upsert and "_id" in replacement:
            op.new_ids = [replacement["_id"]]
        elif upsert:  # the flush looks the match up and pins the _id it will have

            def pin_id(doc_id: Any) -> WriteRequest:
                return ReplaceOne(filter, {**replacement, "_id": doc_id}, upsert=True, **kw)

            op.pin_id = pin_id
        self._queue(op)
        return BufferedResult("replace_one")

    def delete_one(self, filter: Mapping[str, Any], **kw: Any) -> BufferedResult:
        self._queue(self._op("delete_one", DeleteOne(filter, **kw), filter))
        return BufferedResult("delete_one")

    def delete_many(self, filter: Mapping[str, Any], **kw: Any) -> BufferedResult:
        self._queue(self._op("delete_many", DeleteMany(filter, **kw), filter))
        return BufferedResult("delete_many")

    def __getattr__(self, attribute: str) -> Any:
        """Everything else is the real collection's, after flushing this collection's writes."""
        if attribute in UNBUFFERED_WRITES:
            raise MigrationError(
                f"{attribute}() is not available inside a migration: use update_one, "
                "replace_one, insert_one, delete_one or their *_many forms"
            )
        target = getattr(self.collection, attribute)
        if callable(target):

            def flushed_call(*args: Any, **kwargs: Any) -> Any:
                self._buffer.flush([self.name])
                return target(*args, **kwargs)

            return flushed_call
        return target


def _pin_upsert_id(filter_doc: Mapping[str, Any], update: Any) -> tuple[Any, list[Any]]:
    """Give an upsert a known `_id`, so resume and rollback can remove what it inserts."""
    pinned, value = id_equality(filter_doc)
    if pinned:
        return update, [value]
    if isinstance(update, Mapping) and all(str(key).startswith("$") for key in update):
        if any("_id" in (fields or {}) for fields in update.values()):
            return update, []
        new_id = ObjectId()
        update = dict(update)
        update["$setOnInsert"] = {**update.get("$setOnInsert", {}), "_id": new_id}
        return update, [new_id]
    raise MigrationError(
        "an upsert with a pipeline or replacement update needs an _id in its filter, so that "
        "resume and rollback can find the document it inserts"
    )
