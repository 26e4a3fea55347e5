"""The options the `ishan players` commands share, as `Annotated` types for their signatures,
and the one place their filter options become a `Filters`.

Defaults stay in the command signatures. Only Typer loads at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ishan_tools._cli.options import json_option

if TYPE_CHECKING:
    from ishan_tools.players.filters import Filters

_FILTERS = "Filters"
_OUTPUT = "Output"
Data = Annotated[
    Path | None,
    typer.Option(
        "--data",
        envvar="ISHAN_PLAYERS_DATA",
        help="Players CSV (.csv or .csv.gz, Kaggle column names); default: the embedded FIFA 22.",
        show_default=False,
    ),
]


class RoleRule(StrEnum):
    """How a player's positions become his role (see `data.role_of_positions`)."""

    first = "first"
    majority = "majority"


RoleFrom = Annotated[
    RoleRule,
    typer.Option(help="A player's role: his first position's, or most of his positions'."),
]
Rating = Annotated[float | None, typer.Option(min=0, max=99, show_default=False)]
Top = Annotated[int, typer.Option("--top", "-n", min=1, help="How many matches to show.")]
MinAge = Annotated[
    int | None,
    typer.Option(min=0, help="Youngest age to include.", rich_help_panel=_FILTERS),
]
MaxAge = Annotated[
    int | None,
    typer.Option(min=0, help="Oldest age to include.", rich_help_panel=_FILTERS),
]
MinOverall = Annotated[
    int | None,
    typer.Option(min=0, help="Lowest overall rating to include.", rich_help_panel=_FILTERS),
]
MaxValue = Annotated[
    str | None,
    typer.Option(help="Market value in euros: 20000000, 20M, 500k.", rich_help_panel=_FILTERS),
]
Foot = Annotated[str | None, typer.Option(help="left or right.", rich_help_panel=_FILTERS)]
Plays = Annotated[
    list[str] | None,
    typer.Option(
        help="A position code he lists (CB, LW, ...); repeat for any of several.",
        rich_help_panel=_FILTERS,
    ),
]


def _name_part(of: str) -> Any:
    """A repeatable text filter: part of `of` (the league name, ...)."""
    return typer.Option(help=f"Part of {of}; repeat for any of several.", rich_help_panel=_FILTERS)


League = Annotated[list[str] | None, _name_part("the league name")]
Club = Annotated[list[str] | None, _name_part("the club name")]
Nationality = Annotated[list[str] | None, _name_part("the nationality")]
Weight = Annotated[
    list[str] | None,
    typer.Option(
        "--weight", "-w", help="ATTRIBUTE=W, repeatable: pace=2, role=0 (default 1 each)."
    ),
]
Explain = Annotated[
    bool, typer.Option("--explain", help="Show which ratings differ most.", rich_help_panel=_OUTPUT)
]
AsJson = Annotated[bool, json_option(panel=_OUTPUT)]
AsCsv = Annotated[bool, typer.Option("--csv", help="Print CSV.", rich_help_panel=_OUTPUT)]
Plot = Annotated[
    Path | None,
    typer.Option(help="Also write a radar chart (PNG, SVG, PDF).", rich_help_panel=_OUTPUT),
]


def filters_from(params: Mapping[str, Any]) -> Filters:
    """The filters a command's parsed filter options ask for (`ctx.params` of `find`/`like`:
    `--min-age`, `--max-age`, `--min-overall`, `--max-value`, `--foot`, `--plays`, `--league`,
    `--club`, `--nationality`)."""
    from ishan_tools.players.filters import Filters, parse_money

    max_value = params["max_value"]
    return Filters(
        min_age=params["min_age"],
        max_age=params["max_age"],
        min_overall=params["min_overall"],
        max_value=None if max_value is None else parse_money(max_value),
        foot=params["foot"],
        leagues=tuple(params["league"] or ()),
        clubs=tuple(params["club"] or ()),
        nationalities=tuple(params["nationality"] or ()),
        plays=tuple(params["plays"] or ()),
    )
