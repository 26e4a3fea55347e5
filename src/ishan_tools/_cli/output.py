"""The toolkit's one way to print: a rich console for people, indented JSON for programs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "print_json", "to_json"]


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (tables, the data) or stderr (progress, notes)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def to_json(value: Any) -> str:
    """Indented JSON, non-ASCII kept as is; values JSON lacks (datetimes, ObjectIds) as text."""
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def print_json(value: Any) -> None:
    """`value` as JSON on stdout, for `--json`."""
    print(to_json(value), flush=True)
