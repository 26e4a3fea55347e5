"""The root `ishan` command: wires each system's sub-app and maps errors to exit codes.

Nothing else lives here. Each sub-app module imports only Typer at import time, so
`ishan --help` stays fast; heavy libraries load inside the commands that need them.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ishan_tools import __version__
from ishan_tools.crawl.cli import app as crawl_app
from ishan_tools.errors import IshanError
from ishan_tools.infer.cli import app as infer_app
from ishan_tools.migrate.cli import app as migrate_app
from ishan_tools.players.cli import app as players_app


class _RootGroup(TyperGroup):
    """Turns an `IshanError` from any command into one red line and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except IshanError as exc:
            if ctx.params.get("debug"):
                raise
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            if ctx.params.get("debug"):
                raise
            typer.secho("interrupted", fg="red", err=True)
            raise typer.Exit(130) from None


app = typer.Typer(
    name="ishan",
    cls=_RootGroup,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ishan {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    """ishan: a toolkit of small production-grade tools.

    Every command exits 0 on success, 1 on a failure it explains in one red line,
    2 on bad usage and 130 when interrupted.
    """


app.add_typer(crawl_app, name="crawl")
app.add_typer(migrate_app, name="migrate")
app.add_typer(players_app, name="players")
app.add_typer(infer_app, name="infer")
