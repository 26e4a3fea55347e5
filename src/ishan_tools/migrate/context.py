"""The `ctx` a context-form script receives, and run ids."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ishan_tools.migrate.buffer import BufferedCollection


def new_run_id() -> str:
    """A sortable, short, unique run id: UTC time plus 4 random hex digits."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


class MigrationContext:
    """The `ctx` of `migrate(doc, ctx)`: collections by name, `log`, `dry_run`, `run_id`."""

    def __init__(
        self,
        *,
        migration: str,
        run_id: str,
        dry_run: bool,
        collection: Callable[[str], BufferedCollection],
        log: Callable[[Any, Any], None],
    ) -> None:
        self.migration = migration
        self.run_id = run_id
        self.dry_run = dry_run
        self._collection = collection
        self._log = log

    def collection(self, name: str) -> BufferedCollection:
        return self._collection(name)

    __getitem__ = collection

    def log(self, action: Any, content: Any = None) -> None:
        self._log(action, content)
