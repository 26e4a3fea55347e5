"""`ishan migrate`: per-document MongoDB migrations, fast, resumable and reversible.

Importable without Typer. `run_migration` runs a script, `rollback_migration` undoes every run
of a migration, `migration_status` lists the changelog, `unlock` removes a stale lock. Names
load lazily, so importing the package (as `ishan --help` does) does not import pymongo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ishan_tools._lazy import lazy_exports

if TYPE_CHECKING:
    from ishan_tools.migrate.api import RollbackPlan as RollbackPlan
    from ishan_tools.migrate.api import migration_status as migration_status
    from ishan_tools.migrate.api import plan_rollback as plan_rollback
    from ishan_tools.migrate.api import rollback_migration as rollback_migration
    from ishan_tools.migrate.api import run_migration as run_migration
    from ishan_tools.migrate.api import unlock as unlock
    from ishan_tools.migrate.config import RunConfig as RunConfig
    from ishan_tools.migrate.connection import ConnectionConfig as ConnectionConfig
    from ishan_tools.migrate.report import DocumentError as DocumentError
    from ishan_tools.migrate.report import RunSummary as RunSummary
    from ishan_tools.migrate.script import MigrationScript as MigrationScript
    from ishan_tools.migrate.script import load_script as load_script
    from ishan_tools.migrate.script import write_template as write_template

__all__, __getattr__ = lazy_exports(__name__, __file__)
