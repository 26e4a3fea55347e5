"""Turning matches and players into rich tables (used by the CLI only; CSV is in `export`)."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ishan_tools.players.data import ATTRIBUTES, PlayerTable
from ishan_tools.players.export import explanation
from ishan_tools.players.index import Match, Profile

SHORT = {
    "pace": "PAC",
    "shooting": "SHO",
    "passing": "PAS",
    "dribbling": "DRI",
    "defending": "DEF",
    "physic": "PHY",
}


def _table(title: str) -> Table:
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


def _text(value: object) -> str:
    return "" if value is None else str(value)


def describe(profile: Profile) -> str:
    """`midfielder, pace 75, shooting 72, ...` for titles."""
    ratings = ", ".join(f"{name} {profile.ratings[name]:g}" for name in profile.ratings)
    return f"{profile.role}, {ratings}"


def matches_view(
    matches: Sequence[Match], profile: Profile, *, title: str, explain: bool
) -> RenderableType:
    """The matches table; with `explain`, a line per match on what differs most below it."""
    table = _table(title)
    for header in ("#", "name", "club", "nationality", "age", "OVR", "role"):
        if header in ("#", "age", "OVR"):
            table.add_column(header, justify="right", no_wrap=True)
        else:
            table.add_column(header)
    for name in ATTRIBUTES:
        table.add_column(SHORT[name], justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    for rank, match in enumerate(matches, start=1):
        player = match.player
        table.add_row(
            str(rank),
            _text(player["short_name"]),
            _text(player["club_name"]),
            _text(player["nationality_name"]),
            _text(player["age"]),
            _text(player["overall"]),
            _text(player["role"]),
            *(_text(player[name]) for name in ATTRIBUTES),
            f"{match.score:.4f}",
        )
    if not explain:
        return table
    lines = [Text("Differs most from the profile (player minus profile):", style="bold")]
    for rank, match in enumerate(matches, start=1):
        lines.append(Text(f"{rank}. {match.player['short_name']}: {explanation(match, profile)}"))
    return Group(table, *lines)


def players_table(table: PlayerTable, rows: Sequence[int], *, title: str) -> Table:
    """A list of players (search results, ambiguous names)."""
    out = _table(title)
    for header in ("sofifa_id", "name", "full name", "positions", "club", "age", "OVR"):
        out.add_column(header, justify="right" if header in ("sofifa_id", "age", "OVR") else "left")
    for row in rows:
        player = table.record(row)
        out.add_row(
            *(
                _text(player[key])
                for key in (
                    "sofifa_id",
                    "short_name",
                    "long_name",
                    "player_positions",
                    "club_name",
                    "age",
                    "overall",
                )
            )
        )
    return out


def player_card(player: dict[str, object], *, indexed: bool) -> Table:
    """Every field of one player, one per line."""
    out = Table(title=_text(player["long_name"]), title_justify="left", show_header=False)
    out.add_column("field", style="bold")
    out.add_column("value")
    for key, value in player.items():
        out.add_row(key, _text(value))
    out.add_row("comparable", "yes" if indexed else "no (goalkeeper or missing attributes)")
    return out
