"""`ishan migrate`: per-document MongoDB migrations, fast, resumable and reversible.

Importable without Typer. `run_migration` runs a script, `rollback_migration` undoes every run
of a migration, `migration_status` lists the changelog, `unlock` removes a stale lock. Names
load lazily, so importing the package (as `ishan --help` does) does not import pymongo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ishan_tools._lazy import lazy_exports

if TYPE_CHECKING:
    from ishan_tools.migrate.api import (
        RollbackPlan,
        migration_status,
        plan_rollback,
        rollback_migration,
        run_migration,
        unlock,
    )
    from ishan_tools.migrate.config import RunConfig
    from ishan_tools.migrate.connection import ConnectionConfig
    from ishan_tools.migrate.report import DocumentError, RunSummary
    from ishan_tools.migrate.script import MigrationScript, load_script, write_template

_EXPORTS = {
    "RollbackPlan": "api",
    "migration_status": "api",
    "plan_rollback": "api",
    "rollback_migration": "api",
    "run_migration": "api",
    "unlock": "api",
    "ConnectionConfig": "connection",
    "DocumentError": "report",
    "RunConfig": "config",
    "RunSummary": "report",
    "MigrationScript": "script",
    "load_script": "script",
    "write_template": "script",
}

__all__ = [
    "ConnectionConfig",
    "DocumentError",
    "MigrationScript",
    "RollbackPlan",
    "RunConfig",
    "RunSummary",
    "load_script",
    "migration_status",
    "plan_rollback",
    "rollback_migration",
    "run_migration",
    "unlock",
    "write_template",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
