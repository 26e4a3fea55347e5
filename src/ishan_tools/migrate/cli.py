"""`ishan migrate`: the Typer sub-app. Parse options, build a config, call the library, render.

Imports only Typer and the standard library at import time; pymongo and rich load inside the
commands. `ishan migrate script.py` is short for `ishan migrate run script.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ishan_tools._cli.extras import require_extra
from ishan_tools._cli.group import default_group
from ishan_tools._cli.options import (
    json_option,
    metrics_host_option,
    metrics_linger_option,
    metrics_port_option,
    quiet_option,
)
from ishan_tools.errors import MigrationError, UsageError
from ishan_tools.migrate.config import RunConfig
from ishan_tools.migrate.connection import ConnectionConfig
from ishan_tools.observe.config import MetricsConfig

app = typer.Typer(
    cls=default_group("run"),
    no_args_is_help=True,
)

Uri = Annotated[
    str,
    typer.Option(
        "--uri",
        envvar=["ISHAN_MIGRATE_URI", "MONGODB_URI", "DB_URL"],
        help="MongoDB connection string (database in its path).",
    ),
]
Db = Annotated[
    str | None,
    typer.Option("--db", envvar="ISHAN_MIGRATE_DB", help="Database (overrides the URI's)."),
]
Timeout = Annotated[
    float,
    typer.Option(
        "--timeout", envvar="ISHAN_MIGRATE_TIMEOUT", min=0.1, help="Seconds to reach the server."
    ),
]
Json = Annotated[bool, json_option()]
C = ConnectionConfig  # the defaults below are its fields' defaults (and RunConfig's, R)
R = RunConfig


@app.callback()
def migrate(ctx: typer.Context) -> None:
    """Per-document MongoDB migrations: fast (bulk writes), resumable and reversible.

    `ishan migrate SCRIPT` is short for `ishan migrate run SCRIPT`.
    """
    if ctx.invoked_subcommand != "new":  # writing a template needs no MongoDB driver
        require_extra("ishan migrate", "migrate")


def _connection(uri: str, db: str | None, timeout: float) -> ConnectionConfig:
    return ConnectionConfig(uri=uri, db=db, timeout_s=timeout)


@app.command("run")
def run_command(
    script: Annotated[Path, typer.Argument(help="The migration script (a .py file).")],
    uri: Uri = C.uri,
    db: Db = C.db,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            envvar="ISHAN_MIGRATE_BATCH_SIZE",
            min=1,
            help="Documents per bulk write (default: the script's batch_size, else 1000).",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Process only the first N documents.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Run every callback, write nothing, report.")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted or failed run.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Run an applied migration again from the start.")
    ] = False,
    no_backup: Annotated[
        bool,
        typer.Option(
            "--no-backup",
            help="Save no before-images: faster, but no rollback and resume is at-least-once.",
        ),
    ] = False,
    continue_on_error: Annotated[
        bool,
        typer.Option("--continue-on-error", help="Log a failing document and go on."),
    ] = False,
    log_dir: Annotated[
        Path,
        typer.Option("--log-dir", envvar="ISHAN_MIGRATE_LOG_DIR", help="Where run logs go."),
    ] = R.log_dir,
    quiet: Annotated[bool, quiet_option("No progress bar.")] = False,
    json_output: Json = False,
    timeout: Timeout = C.timeout_s,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, help="Worker processes sharing the run (by _id ranges)."),
    ] = R.workers,
    join: Annotated[
        bool,
        typer.Option("--join", help="Take part in the run of this script going on now."),
    ] = R.join,
    lease_seconds: Annotated[
        float,
        typer.Option(
            "--lease-seconds",
            min=0.1,
            help="How long a dead worker's partition waits before another takes it over.",
        ),
    ] = R.lease_s,
    metrics_port: Annotated[int | None, metrics_port_option("ISHAN_MIGRATE_METRICS_PORT")] = None,
    metrics_host: Annotated[
        str, metrics_host_option("ISHAN_MIGRATE_METRICS_HOST")
    ] = MetricsConfig.host,
    metrics_linger: Annotated[float, metrics_linger_option()] = MetricsConfig.linger_s,
    max_rate: Annotated[
        float | None,
        typer.Option(
            "--max-rate",
            metavar="DOCS_PER_S",
            help="Documents per second for the whole run, all workers together (0: no limit;"
            " change it live with `ishan migrate throttle`).",
        ),
    ] = R.max_rate,
) -> None:
    """Run a migration script over its primary collection."""
    if resume and force:
        raise UsageError("--resume continues a run and --force starts over: pick one")
    if dry_run and (resume or force):
        raise UsageError("--dry-run always starts from the first document: drop --resume/--force")
    from ishan_tools.migrate.api import run_migration
    from ishan_tools.migrate.metrics import exporting
    from ishan_tools.migrate.render import progress_bar, render_summary

    config = RunConfig(
        script=script,
        batch_size=batch_size,
        limit=limit,
        dry_run=dry_run,
        resume=resume,
        force=force,
        backup=not no_backup,
        continue_on_error=continue_on_error,
        log_dir=log_dir,
        workers=workers,
        join=join,
        lease_s=lease_seconds,
        max_rate=max_rate,
    )
    connection = _connection(uri, db, timeout)
    metrics = None
    if metrics_port is not None and not dry_run:
        metrics = MetricsConfig(metrics_port, metrics_host, metrics_linger)
    with exporting(metrics, workers) as exporter:
        if exporter is not None:
            typer.echo(f"metrics at {exporter.url}", err=True)
        with progress_bar(enabled=not (quiet or json_output)) as progress:
            summary = run_migration(connection, config, progress, exporter)
        render_summary(summary, as_json=json_output, quiet=quiet)
    if summary.status == "failed":
        raise MigrationError(f"{summary.stop_reason}; fix it, then continue with --resume")


@app.command("new")
def new_command(
    name: Annotated[str, typer.Argument(help="Migration name (the file's stem).")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write NAME.py.")] = Path("."),
) -> None:
    """Write a commented template script NAME.py."""
    from ishan_tools.migrate.script import write_template

    typer.echo(f"wrote {write_template(name, directory)}")


@app.command("status")
def status_command(
    uri: Uri = C.uri,
    db: Db = C.db,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where scripts live (never-run ones show as pending).")
    ] = Path("."),
    json_output: Json = False,
    timeout: Timeout = C.timeout_s,
) -> None:
    """Show every migration's status, runs and whether its script changed since."""
    from ishan_tools.migrate.api import migration_status
    from ishan_tools.migrate.render import render_status

    rows, holder, run = migration_status(_connection(uri, db, timeout), directory)
    render_status(rows, holder, run, as_json=json_output)


@app.command("throttle", context_settings={"ignore_unknown_options": True})
def throttle_command(
    name: Annotated[str, typer.Argument(help="The running migration (or its script path).")],
    rate: Annotated[
        float, typer.Argument(metavar="RATE", help="Documents per second (0: no limit).")
    ],
    uri: Uri = C.uri,
    db: Db = C.db,
    json_output: Json = False,
    timeout: Timeout = C.timeout_s,
) -> None:
    """Change the rate limit of a running migration (every worker follows within a second)."""
    from ishan_tools.migrate.api import throttle_migration
    from ishan_tools.migrate.render import render_rate_change

    migration = Path(name).stem if name.endswith(".py") else name
    change = throttle_migration(_connection(uri, db, timeout), migration, rate)
    render_rate_change(change, as_json=json_output)


@app.command("rollback")
def rollback_command(
    name: Annotated[str, typer.Argument(help="Migration name (or its script path).")],
    uri: Uri = C.uri,
    db: Db = C.db,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_output: Json = False,
    timeout: Timeout = C.timeout_s,
) -> None:
    """Restore every document the migration's runs changed; delete what they inserted."""
    from ishan_tools.migrate.api import plan_rollback, rollback_migration
    from ishan_tools.migrate.render import render_rollback

    migration = Path(name).stem if name.endswith(".py") else name
    connection = _connection(uri, db, timeout)
    if not yes:
        plan = plan_rollback(connection, migration)
        render_rollback(plan, done=False, as_json=False)
        if not typer.confirm("Roll back?", default=False, err=True):
            raise typer.Exit(1)
    render_rollback(rollback_migration(connection, migration), done=True, as_json=json_output)


@app.command("unlock")
def unlock_command(
    uri: Uri = C.uri,
    db: Db = C.db,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    timeout: Timeout = C.timeout_s,
) -> None:
    """Remove a stale migration lock (left by a run that died)."""
    from ishan_tools.migrate.api import lock_holder, unlock
    from ishan_tools.migrate.lock import describe

    connection = _connection(uri, db, timeout)
    holder = lock_holder(connection)
    if holder is None:
        typer.echo("not locked")
        return
    typer.echo(f"locked by {describe(holder)}")
    if not yes and not typer.confirm("Remove this lock?", default=False, err=True):
        raise typer.Exit(1)
    removed = unlock(connection)
    typer.echo("unlocked" if removed is not None else "not locked")
