"""Before-images: the state of every document a flush is about to change, in `_ishan_backup`.

An image is `{c: collection, d: _id, img: document | None}` (`None`: the document did not
exist, so undoing means deleting it). A flush's images are saved before its writes, packed
into as few backup documents as fit (`{m, p: partition, b: batch, f: flush, s: seq, images:
[...]}`, up to about 4 MiB each): one insert of a large document costs a server far less than
a thousand small ones. `s` comes from a counter of the migration taken after the images were
read and before the writes, so it orders the flushes of all workers in time. Taking over a
partition restores the images of its batch cut short (numbered above the partition's
`done_batch`); rollback restores, per document, the earliest image (lowest `s`) of all runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import DeleteOne, ReplaceOne

from ishan_tools.migrate.buffer import PendingOp, id_equality

BACKUP = "_ishan_backup"
PACK_BYTES = 4 * 2**20
RESTORE_CHUNK = 1000


_PLAIN_IDS = (int, str, ObjectId, float)


def id_key(doc_id: Any) -> Any:
    """A hashable key for an `_id` (documents and lists as BSON bytes)."""
    if type(doc_id) in _PLAIN_IDS:  # not isinstance: True must not meet 1
        return doc_id
    return bson.encode({"_": doc_id})


@dataclass(frozen=True)
class Image:
    collection: str
    doc_id: Any
    document: Mapping[str, Any] | None


def capture(
    database: Any,
    ops_by_collection: Mapping[str, list[PendingOp]],
    known: Mapping[Any, Mapping[str, Any]] | None = None,
    known_collection: str | None = None,
) -> list[Image]:
    """Read the current state of every document the queued ops can touch.

    `known` holds documents of `known_collection` whose current state the caller already has
    (the primary batch just read), keyed by `id_key`; they are not read again.
    """
    images: list[Image] = []
    for name, ops in ops_by_collection.items():
        collection = database[name]
        ids: dict[Any, Any] = {}
        other_filters: list[Mapping[str, Any]] = []
        for op in ops:
            if op.pin_id is not None:
                match = collection.find_one(op.filter or {}, {"_id": 1})
                new_id = ObjectId() if match is None else match["_id"]
                op.request, op.new_ids, op.pin_id = op.pin_id(new_id), [new_id], None
            for doc_id in op.new_ids:
                ids[id_key(doc_id)] = doc_id
            if op.filter is None:
                continue
            pinned, value = id_equality(op.filter)
            if pinned:
                ids[id_key(value)] = value
            else:
                other_filters.append(op.filter)
        if known is not None and name == known_collection:
            for key in list(ids):
                if key in known:
                    images.append(Image(name, ids.pop(key), known[key]))
        if not ids and not other_filters:
            continue
        clauses = _merge_equalities(other_filters)
        if ids:
            clauses.append({"_id": {"$in": list(ids.values())}})
        query = clauses[0] if len(clauses) == 1 else {"$or": clauses}
        raw = collection.with_options(codec_options=CodecOptions(document_class=RawBSONDocument))
        for document in raw.find(query):
            key = id_key(document["_id"])
            ids.pop(key, None)
            images.append(Image(name, document["_id"], document))
        images.extend(Image(name, doc_id, None) for doc_id in ids.values())
    return images


def _merge_equalities(filters: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """`{k: v1}, {k: v2}` -> `{k: {$in: [v1, v2]}}`: one indexable clause instead of many."""
    by_field: dict[str, list[Any]] = {}
    clauses: list[Mapping[str, Any]] = []
    for filter_doc in filters:
        if len(filter_doc) == 1:
            ((field, value),) = filter_doc.items()
            if not field.startswith("$") and not isinstance(value, Mapping | list):
                by_field.setdefault(field, []).append(value)
                continue
        clauses.append(filter_doc)
    clauses.extend({field: {"$in": values}} for field, values in by_field.items())
    return clauses


@dataclass(frozen=True)
class FlushKey:
    """Where a flush's images are filed: migration, partition, batch, flush, and their order."""

    migration: str
    partition: Any
    batch: int
    flush: int
    seq: int


def save(database: Any, key: FlushKey, images: list[Image]) -> None:
    """Store a flush's images (raw BSON where the caller has it, so nothing is re-encoded)."""
    head = {"m": key.migration, "p": key.partition, "b": key.batch, "f": key.flush, "s": key.seq}
    packs: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    size = 0
    for image in images:
        document = image.document
        entries.append({"c": image.collection, "d": image.doc_id, "img": document})
        size += 64 + (len(document.raw) if isinstance(document, RawBSONDocument) else 512)
        if size >= PACK_BYTES:
            packs.append({**head, "images": entries})
            entries, size = [], 0
    if entries:
        packs.append({**head, "images": entries})
    if packs:
        database[BACKUP].insert_many(packs, ordered=True)


def ensure_index(database: Any) -> None:
    database[BACKUP].create_index([("m", 1), ("p", 1), ("b", 1), ("f", 1)])


def _earliest(database: Any, query: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Images matching `query`, the earliest one per document only."""
    seen: set[tuple[str, Any]] = set()
    order = [("s", 1), ("b", 1), ("f", 1), ("_id", 1)]
    for pack in database[BACKUP].find(query).sort(order):
        for entry in pack["images"]:
            key = (entry["c"], id_key(entry["d"]))
            if key not in seen:
                seen.add(key)
                yield entry


def _apply(database: Any, entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Put documents back as their images say; returns restored/deleted counts per collection."""
    pending: dict[str, list[Any]] = {}
    counts: dict[str, dict[str, int]] = {}

    def send(name: str) -> None:
        requests = pending.pop(name, [])
        if requests:
            database[name].bulk_write(requests, ordered=False)

    for entry in entries:
        name, image = entry["c"], entry["img"]
        tally = counts.setdefault(name, {"restored": 0, "deleted": 0})
        if image is None:
            request: Any = DeleteOne({"_id": entry["d"]})
            tally["deleted"] += 1
        else:
            request = ReplaceOne({"_id": entry["d"]}, image, upsert=True)
            tally["restored"] += 1
        pending.setdefault(name, []).append(request)
        if len(pending[name]) >= RESTORE_CHUNK:
            send(name)
    for name in list(pending):
        send(name)
    return counts


def restore_after(database: Any, migration: str, partition: Any, done_batch: int) -> int:
    """Undo the partition's batch cut short (images above `done_batch`) and forget its images."""
    query = {"m": migration, "p": partition, "b": {"$gt": done_batch}}
    counts = _apply(database, _earliest(database, query))
    database[BACKUP].delete_many(query)
    return sum(sum(tally.values()) for tally in counts.values())


def restore_flushes(
    database: Any, migration: str, partition: Any, batch: int, first_flush: int
) -> None:
    """Undo the flushes of the partition's `batch` from `first_flush` on; forget their images."""
    query = {"m": migration, "p": partition, "b": batch, "f": {"$gte": first_flush}}
    _apply(database, _earliest(database, query))
    database[BACKUP].delete_many(query)


def inserted_ids(database: Any, migration: str, collection: str) -> set[Any]:
    """Keys (`id_key`) of documents the migration's runs inserted into `collection`."""
    return {
        id_key(entry["d"])
        for entry in _earliest(database, {"m": migration})
        if entry["c"] == collection and entry["img"] is None
    }


def rollback_plan(database: Any, migration: str) -> dict[str, dict[str, int]]:
    """What a rollback would do: per collection, documents restored and inserted ones deleted."""
    plan: dict[str, dict[str, int]] = {}
    for entry in _earliest(database, {"m": migration}):
        tally = plan.setdefault(entry["c"], {"restored": 0, "deleted": 0})
        tally["deleted" if entry["img"] is None else "restored"] += 1
    return plan


def rollback(database: Any, migration: str) -> dict[str, dict[str, int]]:
    """Restore the earliest image of every document the migration touched; drop the images."""
    counts = _apply(database, _earliest(database, {"m": migration}))
    database[BACKUP].delete_many({"m": migration})
    return counts
