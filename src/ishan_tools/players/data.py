"""Loading a FIFA player table: required columns, number parsing and each player's role.

The embedded default is FIFA 22 (`players_22.csv.gz` next to this module, 28 of the
original Kaggle columns). `load_players(path)` also reads the complete Kaggle file and other
FIFA years with the same column names, gzip-compressed or not.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ishan_tools.errors import PlayersError, UsageError

EMBEDDED_DATA = Path(__file__).with_name("players_22.csv.gz")
EMBEDDED_NAME = "embedded FIFA 22 (players_22.csv, 19,239 players)"

ATTRIBUTES = ("pace", "shooting", "passing", "dribbling", "defending", "physic")
ROLES = ("attacker", "midfielder", "defender")

# The one role table: a player's role is the role of the first position he lists.
ROLE_OF_POSITION: dict[str, str] = {
    **dict.fromkeys(("ST", "CF", "LF", "RF", "LW", "RW"), "attacker"),
    **dict.fromkeys(("CAM", "CM", "CDM", "LM", "RM"), "midfielder"),
    **dict.fromkeys(("CB", "LB", "RB", "LWB", "RWB"), "defender"),
}
GOALKEEPER = "GK"

# The columns used, in the Kaggle file's order (the embedded file holds exactly these).
COLUMNS = (
    "sofifa_id",
    "short_name",
    "long_name",
    "player_positions",
    "overall",
    "potential",
    "value_eur",
    "wage_eur",
    "age",
    "height_cm",
    "weight_kg",
    "club_name",
    "league_name",
    "club_position",
    "club_jersey_number",
    "club_contract_valid_until",
    "nationality_name",
    "preferred_foot",
    "weak_foot",
    "skill_moves",
    "international_reputation",
    "work_rate",
    *ATTRIBUTES,
)
TEXT_COLUMNS = (
    "short_name",
    "long_name",
    "player_positions",
    "club_name",
    "league_name",
    "club_position",
    "nationality_name",
    "preferred_foot",
    "work_rate",
)
NUMBER_COLUMNS = tuple(name for name in COLUMNS if name not in TEXT_COLUMNS and name != "sofifa_id")
# What every file must have: identity, positions, the six attributes and the result table.
REQUIRED_COLUMNS = (
    "sofifa_id",
    "short_name",
    "long_name",
    "player_positions",
    "club_name",
    "nationality_name",
    "age",
    "overall",
    *ATTRIBUTES,
)


# Letters that Unicode does not decompose into a base letter plus an accent.
_UNDECOMPOSED = str.maketrans(
    {
        "ø": "o",
        "Ø": "o",
        "đ": "d",
        "Đ": "d",
        "ł": "l",
        "Ł": "l",
        "\u0131": "i",
        "æ": "ae",
        "œ": "oe",
    }
)


def fold(text: str) -> str:
    """`text` without accents, case-folded and with single spaces: 'Kanté ' -> 'kante'."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_UNDECOMPOSED))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


ROLE_RULES = ("first", "majority")


def role_of_positions(positions: str, rule: str = "first") -> str | None:
    """The outfield role of a `player_positions` cell, or None (goalkeeper, unknown code).

    `first` (the default): the role of the first position, `"RW, ST, CF"` -> attacker.
    `majority`: the role most of his positions share, ties to the earlier one
    (`"CAM, ST, CF"` -> attacker); a player whose first position is GK stays out.
    """
    codes = [code.strip().upper() for code in positions.split(",")]
    first = ROLE_OF_POSITION.get(codes[0])
    if rule == "first" or first is None:
        return first
    _check_role_rule(rule)
    roles = [ROLE_OF_POSITION[code] for code in codes if code in ROLE_OF_POSITION]
    return max(roles, key=lambda role: (roles.count(role), -roles.index(role)))


@dataclass(eq=False)
class PlayerTable:
    """Every row of a player file, in file order; text cells '' and numbers NaN when empty."""

    source: str
    ids: NDArray[np.int64]
    text: dict[str, list[str]]
    numbers: dict[str, NDArray[np.float64]]
    roles: list[str | None]
    role_rule: str = "first"
    _codes: dict[str, tuple[list[str], NDArray[np.intp]]] = field(default_factory=dict)
    _folded: dict[str, list[str]] = field(default_factory=dict)
    _rows_by_id: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.roles)

    def with_role_rule(self, rule: str) -> PlayerTable:
        """The same players with roles derived by `rule`; columns and caches are shared."""
        if rule == self.role_rule:
            return self
        _check_role_rule(rule)
        roles = [role_of_positions(cell, rule) for cell in self.text["player_positions"]]
        return replace(self, roles=roles, role_rule=rule)

    @property
    def attributes(self) -> NDArray[np.float64]:
        """The six attributes as an (n, 6) matrix, NaN where missing."""
        return np.column_stack([self.numbers[name] for name in ATTRIBUTES])

    def has(self, column: str) -> bool:
        return column in self.text or column in self.numbers

    def categories(self, column: str) -> tuple[list[str], NDArray[np.intp]]:
        """Distinct folded values of a text column and each row's code into them (cached)."""
        if column not in self._codes:
            folded = np.array(self.folded(column), dtype=object)
            values, codes = np.unique(folded, return_inverse=True)
            self._codes[column] = ([str(v) for v in values], codes.astype(np.intp))
        return self._codes[column]

    def row_of(self, sofifa_id: int) -> int | None:
        """The row of the first player with this sofifa id, or None."""
        if not self._rows_by_id:
            for row, player_id in reversed(list(enumerate(self.ids.tolist()))):
                self._rows_by_id[player_id] = row
        return self._rows_by_id.get(sofifa_id)

    def folded(self, column: str) -> list[str]:
        """A text column passed through `fold` (cached), for accent-insensitive matching."""
        if column not in self._folded:
            self._folded[column] = [fold(value) for value in self.text[column]]
        return self._folded[column]

    def record(self, row: int) -> dict[str, object]:
        """One player as a plain dict (JSON-ready): ints where whole, None where empty or
        where the file has no such column."""
        out: dict[str, object] = {"sofifa_id": int(self.ids[row])}
        for name in COLUMNS[1:]:
            if name in self.text:
                out[name] = self.text[name][row] or None
            elif name in self.numbers:
                out[name] = _plain_number(float(self.numbers[name][row]))
            else:
                out[name] = None
            if name == "player_positions":
                out["role"] = self.roles[row]
        return out


def _plain_number(value: float) -> int | float | None:
    if math.isnan(value):
        return None
    return int(value) if value.is_integer() else value


def load_players(path: Path | None = None, *, role_rule: str = "first") -> PlayerTable:
    """Read a player CSV (the embedded FIFA 22 file when `path` is None); `role_rule`
    picks how positions become roles (see `role_of_positions`)."""
    _check_role_rule(role_rule)
    source = EMBEDDED_NAME if path is None else str(path)
    raw = _read_bytes(path if path is not None else EMBEDDED_DATA, source)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig", errors="replace"), newline="")))
    if not rows:
        raise PlayersError(f"{source} is empty: expected a FIFA players CSV with a header row")
    header = [name.strip() for name in rows[0]]
    body = rows[1:]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise PlayersError(
            f"{source} lacks required column(s) {', '.join(missing)}; a FIFA players CSV "
            f"(e.g. Kaggle players_22.csv) has {', '.join(REQUIRED_COLUMNS)}"
        )
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise PlayersError(
                f"{source}, row {number}: {len(row)} fields where the header has {len(header)}"
            )
    if not body:
        raise PlayersError(f"{source} has a header but no players")
    column_index = {name: i for i, name in enumerate(header)}
    columns: list[Sequence[str]] = list(zip(*body, strict=True))
    text = {
        name: list(columns[column_index[name]]) for name in TEXT_COLUMNS if name in column_index
    }
    numbers = {
        name: _parse_numbers(columns[column_index[name]], name, source)
        for name in NUMBER_COLUMNS
        if name in column_index
    }
    ids = _parse_numbers(columns[column_index["sofifa_id"]], "sofifa_id", source)
    if np.isnan(ids).any():
        raise PlayersError(f"{source}, row {int(np.isnan(ids).argmax()) + 2}: empty sofifa_id")
    roles = [role_of_positions(cell, role_rule) for cell in text["player_positions"]]
    return PlayerTable(source, ids.astype(np.int64), text, numbers, roles, role_rule)


def _check_role_rule(rule: str) -> None:
    if rule not in ROLE_RULES:
        raise UsageError(f"role rule must be one of {', '.join(ROLE_RULES)}, not {rule!r}")


def _read_bytes(path: Path, source: str) -> bytes:
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except FileNotFoundError:
        raise PlayersError(f"{source}: no such file (pass --data PATH to a players CSV)") from None
    except IsADirectoryError:
        raise PlayersError(f"{source} is a directory, not a players CSV") from None
    except (OSError, EOFError) as exc:
        raise PlayersError(f"cannot read {source}: {exc}") from None


def _parse_numbers(cells: Sequence[str], column: str, source: str) -> NDArray[np.float64]:
    """Cells as floats (`85`, `85.0`; empty -> NaN); a non-number is an error naming its row."""
    try:
        return np.array([cell or "nan" for cell in cells], dtype=np.float64)
    except ValueError:
        pass
    values = []
    for number, cell in enumerate(cells, start=2):
        try:
            values.append(float(cell or "nan"))
        except ValueError:
            raise PlayersError(
                f"{source}, row {number}: {column} is {cell!r}, not a number"
            ) from None
    return np.array(values, dtype=np.float64)
