"""Which players a query may return: age, overall, value, foot, positions, league, club,
nationality."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ishan_tools.errors import PlayersError, UsageError
from ishan_tools.players.data import GOALKEEPER, ROLE_OF_POSITION, PlayerTable, fold

FEET = ("left", "right")
_MONEY = re.compile(r"^\s*€?\s*(\d+(?:\.\d+)?)\s*([kmb]?)\s*$", re.IGNORECASE)
_MULTIPLIER = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9}


def parse_money(text: str) -> float:
    """Euros from `20000000`, `20M`, `€500k` or `1.5m`."""
    match = _MONEY.match(text)
    if not match:
        raise UsageError(f"cannot read {text!r} as an amount in euros (try 20000000, 20M or 500k)")
    return float(match.group(1)) * _MULTIPLIER[match.group(2).lower()]


@dataclass(frozen=True)
class Filters:
    """Conditions every returned player meets; text filters match any part of the name.

    `leagues`, `clubs` and `nationalities` are accent- and case-insensitive substrings:
    a player passes when his value contains any one of them. A player whose value is
    unknown fails a filter on that value. `plays` holds position codes (`CB`, `LB`): a player
    passes when he lists any one of them.
    """

    min_age: int | None = None
    max_age: int | None = None
    min_overall: int | None = None
    max_value: float | None = None
    foot: str | None = None
    leagues: tuple[str, ...] = ()
    clubs: tuple[str, ...] = ()
    nationalities: tuple[str, ...] = ()
    plays: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.foot is not None and self.foot.lower() not in FEET:
            raise UsageError(f"foot must be left or right, not {self.foot!r}")
        for name in ("min_age", "max_age", "min_overall", "max_value"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"{name.replace('_', ' ')} must not be negative, got {value}")
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise UsageError(f"min age {self.min_age} is above max age {self.max_age}")
        for code in self.plays:
            if code.strip().upper() == GOALKEEPER:
                raise UsageError("goalkeepers are not compared: they have no outfield attributes")
            if code.strip().upper() not in ROLE_OF_POSITION:
                raise UsageError(
                    f"unknown position code {code!r}: use one of {', '.join(ROLE_OF_POSITION)}"
                )

    @property
    def active(self) -> bool:
        return self != Filters()

    def mask(self, table: PlayerTable) -> NDArray[np.bool_]:
        """True for each table row that passes every filter."""
        keep = np.ones(len(table), dtype=np.bool_)
        with np.errstate(invalid="ignore"):
            if self.min_age is not None:
                keep &= _numbers(table, "age") >= self.min_age
            if self.max_age is not None:
                keep &= _numbers(table, "age") <= self.max_age
            if self.min_overall is not None:
                keep &= _numbers(table, "overall") >= self.min_overall
            if self.max_value is not None:
                keep &= _numbers(table, "value_eur") <= self.max_value
        if self.foot is not None:
            keep &= _contains_any(table, "preferred_foot", (self.foot,), exact=True)
        for column, wanted in (
            ("league_name", self.leagues),
            ("club_name", self.clubs),
            ("nationality_name", self.nationalities),
        ):
            if wanted:
                keep &= _contains_any(table, column, wanted, exact=False)
        if self.plays:
            keep &= _plays_any(table, self.plays)
        return keep


def _numbers(table: PlayerTable, column: str) -> NDArray[np.float64]:
    if column not in table.numbers:
        raise PlayersError(f"{table.source} has no {column} column to filter on")
    return table.numbers[column]


def _plays_any(table: PlayerTable, codes: tuple[str, ...]) -> NDArray[np.bool_]:
    """Rows whose `player_positions` list any of `codes` (checked once per distinct list)."""
    wanted = {fold(code) for code in codes}
    values, rows = table.categories("player_positions")
    listed = (value.replace(" ", "").split(",") for value in values)
    hit = np.array([not wanted.isdisjoint(row_codes) for row_codes in listed], dtype=np.bool_)
    result: NDArray[np.bool_] = hit[rows]
    return result


def _contains_any(
    table: PlayerTable, column: str, wanted: tuple[str, ...], *, exact: bool
) -> NDArray[np.bool_]:
    if not table.has(column):
        raise PlayersError(f"{table.source} has no {column} column to filter on")
    values, codes = table.categories(column)
    hit = np.zeros(len(values), dtype=np.bool_)
    for text in wanted:
        needle = fold(text)
        found = [
            bool(value) and (needle == value if exact else needle in value) for value in values
        ]
        if not any(found):
            raise PlayersError(
                f"no {column.replace('_name', '')} in {table.source} matches {text!r}"
            )
        hit |= np.array(found, dtype=np.bool_)
    result: NDArray[np.bool_] = hit[codes]
    return result
