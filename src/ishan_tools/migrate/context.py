"""The `ctx` a context-form script receives, and run ids."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ishan_tools.migrate.buffer import BufferedCollection
    from ishan_tools.migrate.runner import Runner


def new_run_id() -> str:
    """A sortable, short, unique run id: UTC time plus 4 random hex digits."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


class MigrationContext:
    """The `ctx` of `migrate(doc, ctx)`: collections by name, `log`, `dry_run`, `run_id`."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self.migration = runner.script.name
        self.run_id = runner.run_id
        self.dry_run = runner.dry_run

    def collection(self, name: str) -> BufferedCollection:
        return self._runner.collection(name)

    __getitem__ = collection

    def log(self, action: Any, content: Any = None) -> None:
        self._runner.log.write_log(action, content)
