"""Options that several systems' commands share, declared once.

Each returns a `typer.Option` for an `Annotated[...]` parameter; the default value is written
at the parameter from the system's config class (`port: Port = CoordinatorSettings.port`),
and each system passes its own environment variable names.
"""

from __future__ import annotations

from typing import Any

import typer

__all__ = [
    "host_option",
    "json_option",
    "metrics_host_option",
    "metrics_linger_option",
    "metrics_port_option",
    "port_option",
    "quiet_option",
]


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


METRICS_PANEL = "Metrics (Prometheus)"


def metrics_port_option(envvar: str) -> Any:
    """`--metrics-port`: serve Prometheus text at http://HOST:PORT/metrics while the run lasts."""
    return typer.Option(
        "--metrics-port",
        envvar=envvar,
        min=0,
        max=65535,
        show_default=False,
        help="Serve Prometheus metrics at http://HOST:PORT/metrics while the run lasts "
        "(0: any free port).",
        rich_help_panel=METRICS_PANEL,
    )


def metrics_host_option(envvar: str) -> Any:
    """`--metrics-host`: the address the metrics server binds."""
    return typer.Option(
        "--metrics-host",
        envvar=envvar,
        help="Address the metrics server binds.",
        rich_help_panel=METRICS_PANEL,
    )


def metrics_linger_option() -> Any:
    """`--metrics-linger`: keep serving the final figures after the run."""
    return typer.Option(
        "--metrics-linger",
        min=0.0,
        help="Seconds to keep serving the final figures after the run (so a short run is scraped).",
        rich_help_panel=METRICS_PANEL,
    )
