"""Loading player files: the embedded data, Kaggle-shaped files, drop rules, bad files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ishan_tools.errors import PlayersError
from ishan_tools.players import Index, Profile, load_players, role_of_positions
from ishan_tools.players.data import ATTRIBUTES, REQUIRED_COLUMNS

from .conftest import EXAMPLE_RATINGS, embedded_rows, write_csv


def test_embedded_data_has_every_player_and_indexes_the_outfield(index: Index) -> None:
    table = index.table
    assert len(table) == 19239
    goalkeepers = [row for row, cell in enumerate(table.text["player_positions"]) if cell == "GK"]
    assert len(goalkeepers) == 2132
    assert len(index) == 19239 - 2132
    assert all(index.feature_row[row] == -1 for row in goalkeepers)


@pytest.mark.parametrize(
    ("positions", "role"),
    [
        ("RW, ST, CF", "attacker"),
        ("ST", "attacker"),
        ("CAM, CM, CF", "midfielder"),
        ("CDM", "midfielder"),
        ("LWB, LM", "defender"),
        ("CB", "defender"),
        ("GK", None),
        ("", None),
    ],
)
def test_role_is_the_role_of_the_first_position(positions: str, role: str | None) -> None:
    assert role_of_positions(positions) == role


@pytest.mark.parametrize(
    ("positions", "role"),
    [
        ("LW, LM, CAM", "midfielder"),
        ("CAM, ST, CF", "attacker"),
        ("RB, RM, RW", "defender"),
        ("ST", "attacker"),
        ("GK", None),
    ],
)
def test_majority_rule_takes_the_most_shared_role(positions: str, role: str | None) -> None:
    assert role_of_positions(positions, "majority") == role


def test_majority_rule_changes_roles_but_not_who_is_indexed(index: Index) -> None:
    majority = Index.from_file(role_rule="majority")
    assert majority.rows.tolist() == index.rows.tolist()
    grealish = majority.table.row_of(206517)
    assert grealish is not None
    assert index.table.roles[grealish] == "attacker"
    assert majority.table.roles[grealish] == "midfielder"
    changed = sum(a != b for a, b in zip(index.table.roles, majority.table.roles, strict=True))
    assert 0 < changed < len(index) // 4


def test_only_rows_missing_an_attribute_or_an_outfield_role_are_dropped(tmp_path: Path) -> None:
    rows = embedded_rows()[:301]
    header = rows[0]
    no_pace, goalkeeper_first, keeper_second = rows[5], rows[6], rows[7]
    no_pace[header.index("pace")] = ""
    goalkeeper_first[header.index("player_positions")] = "GK, CB"
    keeper_second[header.index("player_positions")] = "CB, GK"
    table = load_players(write_csv(tmp_path / "players.csv", rows))
    index = Index(table)
    outfield = [
        row
        for row, cells in enumerate(rows[1:])
        if cells[header.index("player_positions")].split(",")[0] != "GK"
        and all(cells[header.index(name)] for name in ATTRIBUTES)
    ]
    assert index.rows.tolist() == outfield
    assert index.feature_row[4] == -1 and index.feature_row[5] == -1 and index.feature_row[6] >= 0


def kaggle_shaped(rows: list[list[str]]) -> list[list[str]]:
    """Like the complete Kaggle file: more columns, another order, numbers as `85.0`."""
    header = rows[0]
    extra = ["player_url", "dob", "ls", "player_traits"]
    numbers = {"overall", "age", "value_eur", *ATTRIBUTES}
    out = [[*extra, *reversed(header)]]
    for cells in rows[1:]:
        converted = [
            f"{float(cell)}" if name in numbers and cell else cell
            for name, cell in zip(header, cells, strict=True)
        ]
        out.append(
            ["https://sofifa.com/x", "1990-01-01", "89+3", "Finesse Shot", *reversed(converted)]
        )
    return out


def test_kaggle_shaped_file_gives_the_same_ranking(tmp_path: Path, index: Index) -> None:
    path = write_csv(tmp_path / "players_22.csv", kaggle_shaped(embedded_rows()))
    other = Index.from_file(path)
    profile = Profile("midfielder", EXAMPLE_RATINGS)
    assert [m.player for m in other.similar(profile, top=10)] == [
        m.player for m in index.similar(profile, top=10)
    ]


def test_gzip_and_plain_files_read_alike(tmp_path: Path) -> None:
    rows = embedded_rows()[:50]
    plain = write_csv(tmp_path / "p.csv", rows)
    packed = tmp_path / "p.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert load_players(packed).record(10) == load_players(plain).record(10)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    rows = embedded_rows()[:20]
    drop = {rows[0].index("physic"), rows[0].index("club_name")}
    trimmed = [[c for i, c in enumerate(cells) if i not in drop] for cells in rows]
    with pytest.raises(PlayersError) as caught:
        load_players(write_csv(tmp_path / "p.csv", trimmed))
    assert "club_name, physic" in str(caught.value)
    assert "lacks required column" in str(caught.value)


def test_bad_number_names_row_and_column(tmp_path: Path) -> None:
    rows = embedded_rows()[:20]
    rows[7][rows[0].index("shooting")] = "high"
    with pytest.raises(PlayersError, match=r"row 8: shooting is 'high', not a number"):
        load_players(write_csv(tmp_path / "p.csv", rows))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (",".join(REQUIRED_COLUMNS).encode() + b"\n", "no players"),
        (",".join(REQUIRED_COLUMNS).encode() + b"\n1,2\n", "row 2: 2 fields"),
    ],
)
def test_broken_files_get_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    with pytest.raises(PlayersError, match=message):
        load_players(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(PlayersError, match="no such file"):
        load_players(tmp_path / "nope.csv")
    with pytest.raises(PlayersError, match="is a directory"):
        load_players(tmp_path)


def test_optional_columns_may_be_absent_but_not_filtered_on(tmp_path: Path) -> None:
    from ishan_tools.players import Filters

    rows = embedded_rows()[:100]
    drop = rows[0].index("league_name")
    path = write_csv(tmp_path / "p.csv", [[c for i, c in enumerate(r) if i != drop] for r in rows])
    index = Index.from_file(path)
    assert (
        index.similar(Profile("attacker", EXAMPLE_RATINGS), top=1)[0].player["league_name"] is None
    )
    with pytest.raises(PlayersError, match="no league_name column"):
        index.similar(Profile("attacker", EXAMPLE_RATINGS), filters=Filters(leagues=("liga",)))


def test_the_wheel_carries_the_data_and_every_file_of_the_page() -> None:
    """What `pip install` gets: the embedded CSV and the scouting page's static files."""
    from hatchling.builders.wheel import WheelBuilder

    root = Path(__file__).resolve().parents[2]
    shipped = {f.distribution_path for f in WheelBuilder(str(root)).recurse_included_files()}
    package = root / "src" / "ishan_tools" / "players"
    page = {f"ishan_tools/players/static/{p.name}" for p in (package / "static").iterdir()}
    assert {"ishan_tools/players/static/index.html", "ishan_tools/players/static/app.js"} <= page
    assert page | {"ishan_tools/players/players_22.csv.gz"} <= shipped
