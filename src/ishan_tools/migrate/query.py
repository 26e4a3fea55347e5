"""The primary cursor's query: the script's filter, from the checkpoint on.

MongoDB compares values of different BSON types by a fixed type order, but `$gt` only matches
values of the same type. "After X" therefore also admits every `_id` of a type
that sorts after X's type, so collections with mixed `_id` types resume correctly.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Mapping
from typing import Any

from bson import Binary, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

#: `$type` aliases in MongoDB's comparison order (numbers share one rank, as do strings).
TYPE_ORDER = (
    ("minKey",),
    ("null",),
    ("number",),
    ("string", "symbol"),
    ("object",),
    ("array",),
    ("binData",),
    ("objectId",),
    ("bool",),
    ("date",),
    ("timestamp",),
    ("regex",),
    ("maxKey",),
)


def type_rank(value: Any) -> int:
    """The position of `value`'s BSON type in MongoDB's comparison order."""
    checks: tuple[tuple[type | tuple[type, ...], int], ...] = (
        (MinKey, 0),
        (type(None), 1),
        (bool, 8),
        ((int, float, Int64, Decimal128), 2),
        (str, 3),
        (Mapping, 4),
        ((list, tuple), 5),
        ((bytes, Binary, uuid.UUID), 6),
        (ObjectId, 7),
        (datetime.datetime, 9),
        (Timestamp, 10),
        ((Regex, re.Pattern), 11),
        (MaxKey, 12),
    )
    for types, rank in checks:
        if isinstance(value, types):
            return rank
    return 4


def _aliases(ranks: range) -> list[str]:
    return [alias for rank in ranks for alias in TYPE_ORDER[rank]]


def after(value: Any) -> dict[str, Any]:
    """Matches every `_id` that sorts after `value`."""
    later = _aliases(range(type_rank(value) + 1, len(TYPE_ORDER)))
    clause: dict[str, Any] = {"_id": {"$gt": value}}
    return {"$or": [clause, {"_id": {"$type": later}}]} if later else clause


def primary_query(
    filter_doc: Mapping[str, Any], *, start_after: Any = None, has_start: bool = False
) -> dict[str, Any]:
    """The script's filter, restricted to `_id`s after `start_after` when `has_start`."""
    if not has_start:
        return dict(filter_doc)
    if not filter_doc:
        return after(start_after)
    return {"$and": [filter_doc, after(start_after)]}
