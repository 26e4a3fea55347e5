"""Finding players by sofifa id or name, ignoring accents and case."""

from __future__ import annotations

from ishan_tools.errors import PlayersError
from ishan_tools.players.data import PlayerTable, fold


class AmbiguousPlayerError(PlayersError):
    """A name matched several players; `candidates` holds their table rows, best first."""

    def __init__(self, query: str, candidates: list[int]) -> None:
        super().__init__(
            f"{query!r} matches {len(candidates)} players; pass a sofifa id or a fuller name"
        )
        self.query = query
        self.candidates = candidates


def _matches(table: PlayerTable, text: str) -> tuple[list[int], list[int]]:
    """Rows whose short or long name equals `text`, and rows where it is only a part."""
    needle = fold(text)
    if not needle:
        raise PlayersError("give part of a player's name (or a sofifa id)")
    exact: list[int] = []
    partial: list[int] = []
    shorts, longs = table.folded("short_name"), table.folded("long_name")
    for row, (short, long) in enumerate(zip(shorts, longs, strict=True)):
        if needle in (short, long):
            exact.append(row)
        elif needle in short or needle in long:
            partial.append(row)
    return exact, partial


def search(table: PlayerTable, text: str) -> list[int]:
    """Rows whose short or long name contains `text` (accent- and case-insensitive).

    Exact name matches come first, then the rest in file order (highest overall first
    in the Kaggle files).
    """
    exact, partial = _matches(table, text)
    return exact + partial


def resolve_player(table: PlayerTable, query: str) -> int:
    """The one row `query` names: a sofifa id, else an exact name, else a unique partial one."""
    query = query.strip()
    if query.isdigit():
        row = table.row_of(int(query))
        if row is None:
            raise PlayersError(f"no player with sofifa id {query} in {table.source}")
        return row
    exact, partial = _matches(table, query)
    candidates = exact or partial
    if not candidates:
        raise PlayersError(f"no player named like {query!r}; try `ishan players search TEXT`")
    if len(candidates) > 1:
        raise AmbiguousPlayerError(query, candidates)
    return candidates[0]
