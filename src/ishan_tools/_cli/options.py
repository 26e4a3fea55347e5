"""Options that several systems' commands share, declared once.

Each returns a `typer.Option` for an `Annotated[...]` parameter; the default value is written
at the parameter from the system's config class (`port: Port = CoordinatorSettings.port`),
and each system passes its own environment variable names.
"""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["host_option", "json_option", "port_option", "quiet_option"]


def json_option(*, panel: str | None = None) -> Any:
    """`--json`: machine-readable output on stdout instead of tables."""
    return typer.Option(
        "--json", help="Print JSON on stdout instead of tables.", rich_help_panel=panel
    )


def quiet_option(help: str) -> Any:
    """`-q/--quiet`, with what it leaves out in `help`."""
    return typer.Option("--quiet", "-q", help=help)


def host_option(envvar: str | list[str] | None) -> Any:
    """`--host`: the address a server binds (`envvar`: a name, or names of which the first
    set wins)."""
    return typer.Option("--host", envvar=envvar, help="Address to bind.")


def port_option(
    envvar: str | list[str] | None, help: str = "Port to listen on (0: any free port)."
) -> Any:
    """`--port`: the port a server binds; 0 picks a free one and the real one is reported."""
    return typer.Option("--port", envvar=envvar, min=0, max=65535, help=help)
