"""The primary cursor's query: the script's filter, inside a partition, from the checkpoint on.

MongoDB compares values of different BSON types by a fixed type order, but `$gt` and `$lt`
only match values of the same type. "After X" therefore also admits every `_id` of a type
that sorts after X's type ("before X" every type that sorts before), so collections with
mixed `_id` types split and resume in MongoDB's order.
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


def after(value: Any, *, inclusive: bool = False) -> dict[str, Any]:
    """Matches every `_id` that sorts after `value` (or equals it, when `inclusive`)."""
    later = _aliases(range(type_rank(value) + 1, len(TYPE_ORDER)))
    clause: dict[str, Any] = {"_id": {"$gte" if inclusive else "$gt": value}}
    return {"$or": [clause, {"_id": {"$type": later}}]} if later else clause


def before(value: Any, *, inclusive: bool = False) -> dict[str, Any]:
    """Matches every `_id` that sorts before `value` (or equals it, when `inclusive`)."""
    earlier = _aliases(range(type_rank(value)))
    clause: dict[str, Any] = {"_id": {"$lte" if inclusive else "$lt": value}}
    return {"$or": [clause, {"_id": {"$type": earlier}}]} if earlier else clause


def id_range(
    filter_doc: Mapping[str, Any],
    *,
    low: Any,
    low_inclusive: bool,
    high: Any,
    high_inclusive: bool,
) -> dict[str, Any]:
    """The script's filter, restricted to `_id`s between `low` and `high`."""
    clauses = [dict(filter_doc)] if filter_doc else []
    if type_rank(low) == type_rank(high):  # no other type sorts in between: one plain range
        bounds = {
            "$gte" if low_inclusive else "$gt": low,
            "$lte" if high_inclusive else "$lt": high,
        }
        clauses.append({"_id": bounds})
    else:
        clauses += [after(low, inclusive=low_inclusive), before(high, inclusive=high_inclusive)]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def primary_query(
    filter_doc: Mapping[str, Any], *, start_after: Any = None, has_start: bool = False
) -> dict[str, Any]:
    """The script's filter, restricted to `_id`s after `start_after` when `has_start`."""
    if not has_start:
        return dict(filter_doc)
    if not filter_doc:
        return after(start_after)
    return {"$and": [filter_doc, after(start_after)]}
