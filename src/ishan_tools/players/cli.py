"""`ishan players`: find FIFA players similar to a profile or to another player.

`ishan players --position CM ...` is short for `ishan players find --position CM ...`.
Only Typer and the standard library load at import time; numpy and the index load inside
the commands, so `ishan --help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ishan_tools._cli.extras import require_extra
from ishan_tools._cli.group import default_group
from ishan_tools._cli.options import host_option, port_option
from ishan_tools._cli.output import print_json
from ishan_tools.errors import PlayersError, UsageError
from ishan_tools.players.options import (
    AsCsv,
    AsJson,
    Club,
    Data,
    Explain,
    Foot,
    League,
    MaxAge,
    MaxValue,
    MinAge,
    MinOverall,
    Nationality,
    Plays,
    Plot,
    Rating,
    RoleFrom,
    RoleRule,
    Top,
    Weight,
    filters_from,
)

if TYPE_CHECKING:
    from ishan_tools.players.index import Index, Match, Profile

app = typer.Typer(
    name="players",
    cls=default_group("find"),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DEFAULT_HOST = "127.0.0.1"  # `ishan players serve`, as the original project's API
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class Output:
    """How to show matches: table (optionally explained), JSON or CSV, plus a chart."""

    explain: bool = False
    json: bool = False
    csv: bool = False
    plot: Path | None = None

    def __post_init__(self) -> None:
        if self.json and self.csv:
            raise UsageError("choose one of --json and --csv")


def _load(data: Path | None, role_from: str = "first") -> Index:
    require_extra("ishan players", "players", ("numpy",))
    from ishan_tools.players.index import Index

    return Index.from_file(data, role_rule=role_from)


def _weights(weight: list[str] | None) -> dict[str, float]:
    from ishan_tools.players.index import parse_weight

    return dict(parse_weight(text) for text in weight or ())


def _show(matches: list[Match], profile: Profile, output: Output, *, title: str) -> None:
    from rich.console import Console

    from ishan_tools.players import export, render

    if output.plot is not None:
        from ishan_tools.players.plot import write_radar

        write_radar(output.plot, profile, matches, title=title)
        typer.echo(f"wrote {output.plot}", err=True)
    if output.json:
        print_json([match.record(explain=output.explain) for match in matches])
    elif output.csv:
        typer.echo(export.to_csv(matches, explain=output.explain), nl=False)
    elif not matches:
        typer.secho("no player matches these filters", fg="yellow", err=True)
    else:
        Console().print(render.matches_view(matches, profile, title=title, explain=output.explain))


@app.callback()
def players(ctx: typer.Context, data: Data = None) -> None:
    """Find FIFA players similar to a profile (a position and six ratings) or to a player.

    Ratings left out are ignored. Without a command name the options go to `find`; example
    (the original project's profile):
    ishan players --position midfielder --pace 75 --shooting 72 --passing 85
    --dribbling 80 --defending 65 --physic 70
    """
    ctx.obj = data


@app.command()
def find(
    ctx: typer.Context,
    position: Annotated[
        str | None,
        typer.Option(
            "--position",
            "-p",
            help="attacker, midfielder, defender, or a position code (ST, CM, RB, ...).",
            show_default=False,
        ),
    ] = None,
    pace: Annotated[float | None, typer.Option("--pace", "--speed", min=0, max=99)] = None,
    shooting: Rating = None,
    passing: Rating = None,
    dribbling: Rating = None,
    defending: Annotated[
        float | None, typer.Option("--defending", "--defense", min=0, max=99)
    ] = None,
    physic: Rating = None,
    top: Top = 3,
    # the filter options: filters_from(ctx.params) reads them
    min_age: MinAge = None,
    max_age: MaxAge = None,
    min_overall: MinOverall = None,
    max_value: MaxValue = None,
    foot: Foot = None,
    plays: Plays = None,
    league: League = None,
    club: Club = None,
    nationality: Nationality = None,
    weight: Weight = None,
    explain: Explain = False,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    plot: Plot = None,
    role_from: RoleFrom = RoleRule.first,
    data: Data = None,
) -> None:
    """Players most similar to a profile: a position and any of the six ratings (default)."""
    ratings = {
        "pace": pace,
        "shooting": shooting,
        "passing": passing,
        "dribbling": dribbling,
        "defending": defending,
        "physic": physic,
    }
    if position is None:
        raise UsageError("--position is required: attacker, midfielder, defender or a code (CM)")
    require_extra("ishan players", "players", ("numpy",))
    from ishan_tools.players.index import Profile
    from ishan_tools.players.render import describe

    output = Output(explain=explain, json=as_json, csv=as_csv, plot=plot)
    profile = Profile.of(position, ratings)
    filters = filters_from(ctx.params)
    index = _load(data or ctx.obj, role_from.value)
    matches = index.similar(profile, top=top, filters=filters, weights=_weights(weight))
    _show(matches, profile, output, title=f"Most similar to {describe(profile)}")


@app.command()
def like(
    ctx: typer.Context,
    player: Annotated[str, typer.Argument(help="sofifa id or name (accents optional).")],
    top: Top = 3,
    include_self: Annotated[
        bool, typer.Option("--include-self", help="Keep the player himself.")
    ] = False,
    # the filter options: filters_from(ctx.params) reads them
    min_age: MinAge = None,
    max_age: MaxAge = None,
    min_overall: MinOverall = None,
    max_value: MaxValue = None,
    foot: Foot = None,
    plays: Plays = None,
    league: League = None,
    club: Club = None,
    nationality: Nationality = None,
    weight: Weight = None,
    explain: Explain = False,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    plot: Plot = None,
    role_from: RoleFrom = RoleRule.first,
    data: Data = None,
) -> None:
    """Players most similar to an existing player (himself excluded)."""
    output = Output(explain=explain, json=as_json, csv=as_csv, plot=plot)
    filters = filters_from(ctx.params)
    index = _load(data or ctx.obj, role_from.value)
    row = _resolve(index, player)
    matches = index.like(
        row, top=top, filters=filters, weights=_weights(weight), include_self=include_self
    )
    name = index.table.text["short_name"][row]
    _show(matches, index.profile_of(row), output, title=f"Most similar to {name}")


@app.command()
def show(
    ctx: typer.Context,
    player: Annotated[str, typer.Argument(help="sofifa id or name.")],
    as_json: AsJson = False,
    role_from: RoleFrom = RoleRule.first,
    data: Data = None,
) -> None:
    """Print one player's fields."""
    index = _load(data or ctx.obj, role_from.value)
    from rich.console import Console

    from ishan_tools.players import render

    row = _resolve(index, player)
    record = index.table.record(row)
    indexed = bool(index.feature_row[row] >= 0)
    if as_json:
        print_json({**record, "indexed": indexed})
    else:
        Console().print(render.player_card(record, indexed=indexed))


@app.command()
def search(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Part of a short or full name.")],
    limit: Annotated[int, typer.Option(min=1, help="Most players to list.")] = 20,
    as_json: AsJson = False,
    data: Data = None,
) -> None:
    """List players whose name contains TEXT (accent- and case-insensitive)."""
    index = _load(data or ctx.obj)
    from rich.console import Console

    from ishan_tools.players import render
    from ishan_tools.players.lookup import search as find

    rows = find(index.table, text)
    if not rows:
        raise PlayersError(f"no player's name contains {text!r}")
    if as_json:
        print_json([index.table.record(row) for row in rows[:limit]])
        return
    more = f" (first {limit} of {len(rows)})" if len(rows) > limit else ""
    Console().print(render.players_table(index.table, rows[:limit], title=f"{text!r}{more}"))


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, host_option("ISHAN_PLAYERS_HOST")] = DEFAULT_HOST,
    port: Annotated[int, port_option("ISHAN_PLAYERS_PORT")] = DEFAULT_PORT,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (halves throughput).")
    ] = False,
    role_from: RoleFrom = RoleRule.first,
    data: Data = None,
) -> None:
    """Run the scouting page (at /) and the web API (docs at /docs) until Ctrl-C."""
    require_extra("ishan players serve", "players")
    from ishan_tools.players.api import serve as run_server

    index = _load(data or ctx.obj, role_from.value)

    def ready(url: str) -> None:
        typer.echo(
            f"players page and API running on {url} (API docs at {url}/docs); Ctrl-C stops it",
            err=True,
        )

    run_server(index, host=host, port=port, access_log=access_log, on_ready=ready)


def _resolve(index: Index, query: str) -> int:
    """The row `query` names. Several candidates are listed; at a terminal the user picks
    one by sofifa id, otherwise (or on an empty answer) the error stands."""
    import sys

    from rich.console import Console

    from ishan_tools.players import render
    from ishan_tools.players.lookup import AmbiguousPlayerError, resolve_player

    try:
        return resolve_player(index.table, query)
    except AmbiguousPlayerError as exc:
        shown = exc.candidates[:20]
        more = f", first {len(shown)} of {len(exc.candidates)}" if len(exc.candidates) > 20 else ""
        title = f"{query!r} matches several players{more}:"
        Console(stderr=True).print(render.players_table(index.table, shown, title=title))
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise
        # not typer.prompt: click writes the prompt's last space to stdout, where JSON goes
        typer.echo("sofifa id of the player you mean (Enter to cancel): ", nl=False, err=True)
        answer = sys.stdin.readline().strip()
        listed = {int(index.table.ids[row]): row for row in shown}
        if answer.isdigit() and int(answer) in listed:
            return listed[int(answer)]
        raise
