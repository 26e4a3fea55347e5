"""Queries beyond the original project's: filters, weights, partial profiles, explanations,
`like`, lookup."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from ishan_tools.errors import PlayersError, UsageError
from ishan_tools.players import (
    AmbiguousPlayerError,
    Filters,
    Index,
    Profile,
    parse_money,
    parse_role,
    parse_weight,
    resolve_player,
    search,
)
from ishan_tools.players.data import ATTRIBUTES

from .conftest import EXAMPLE_RATINGS

MIDFIELDER = Profile("midfielder", EXAMPLE_RATINGS)


def ids(matches: list) -> list[object]:  # type: ignore[type-arg]
    return [m.player["sofifa_id"] for m in matches]


def test_every_match_passes_every_filter(index: Index) -> None:
    filters = Filters(
        max_age=23,
        min_overall=70,
        max_value=30e6,
        foot="left",
        leagues=("premier league", "LIGA"),
        nationalities=("spain", "england", "brazil"),
    )
    matches = index.similar(MIDFIELDER, top=15, filters=filters)
    assert len(matches) == 15
    for match in matches:
        player = match.player
        assert player["age"] <= 23 and player["overall"] >= 70  # type: ignore[operator]
        assert player["value_eur"] <= 30e6  # type: ignore[operator]
        assert player["preferred_foot"] == "Left"
        assert (
            "premier league" in str(player["league_name"]).lower()
            or "liga" in str(player["league_name"]).lower()
        )
        assert player["nationality_name"] in ("Spain", "England", "Brazil")
    # the filtered ranking is the unfiltered ranking with the others removed
    everyone = index.similar(MIDFIELDER, top=len(index))
    kept = [m for m in everyone if m.player["sofifa_id"] in set(ids(matches))]
    assert ids(kept) == ids(matches)


def test_text_filters_ignore_accents_and_case(index: Index) -> None:
    matches = index.similar(MIDFIELDER, top=5, filters=Filters(clubs=("atletico de madrid",)))
    assert {m.player["club_name"] for m in matches} == {"Atlético de Madrid"}


def test_unknown_filter_value_is_an_error_not_an_empty_list(index: Index) -> None:
    with pytest.raises(PlayersError, match=r"no club .* matches 'Nowhere United'"):
        index.similar(MIDFIELDER, filters=Filters(clubs=("Nowhere United",)))


def test_impossible_combination_gives_no_matches(index: Index) -> None:
    assert index.similar(MIDFIELDER, filters=Filters(max_age=17, min_overall=90)) == []


def test_weights_match_weighted_cosine(index: Index) -> None:
    weights = {"pace": 4.0, "defending": 0.25, "role": 0.5}
    scale = np.sqrt([0.5, 0.5, 0.5, 4.0, 1.0, 1.0, 1.0, 0.25, 1.0])
    expected = cosine_similarity([index.encode(MIDFIELDER) * scale], index.features * scale)[0]
    order = np.argsort(-expected, kind="stable")[:10]
    got = index.similar(MIDFIELDER, top=10, weights=weights)
    assert ids(got) == [int(index.table.ids[index.rows[i]]) for i in order]
    assert [m.score for m in got] == pytest.approx(expected[order].tolist())


def test_heavy_pace_weight_brings_pace_closer(index: Index) -> None:
    plain = index.similar(MIDFIELDER, top=10)
    heavy = index.similar(MIDFIELDER, top=10, weights={"pace": 50})
    gap = lambda ms: sum(abs(m.differences["pace"]) for m in ms)  # noqa: E731
    assert gap(heavy) < gap(plain)


def test_left_out_ratings_equal_zero_weight(index: Index) -> None:
    partial = Profile("attacker", {"pace": 95, "shooting": 90})
    full = Profile("attacker", {**EXAMPLE_RATINGS, "pace": 95, "shooting": 90})
    zeroed = {name: 0.0 for name in ATTRIBUTES if name not in ("pace", "shooting")}
    assert ids(index.similar(partial, top=8)) == ids(index.similar(full, top=8, weights=zeroed))
    assert set(index.similar(partial, top=1)[0].differences) == {"pace", "shooting"}


def test_differences_are_match_minus_profile_largest_first(index: Index) -> None:
    for match in index.similar(MIDFIELDER, top=5):
        diffs = match.differences
        assert diffs == {name: match.player[name] - EXAMPLE_RATINGS[name] for name in diffs}  # type: ignore[operator]
        sizes = [abs(v) for v in diffs.values()]
        assert sizes == sorted(sizes, reverse=True) and len(diffs) == 6


def test_like_excludes_the_player_unless_asked(index: Index) -> None:
    pedri = resolve_player(index.table, "Pedri")
    others = index.like(pedri, top=3)
    assert 251854 not in ids(others) and len(others) == 3
    with_self = index.like(pedri, top=3, include_self=True)
    assert ids(with_self) == [251854, *ids(others)[:2]]
    assert with_self[0].score == pytest.approx(1.0)


def test_like_a_goalkeeper_is_a_clear_error(index: Index) -> None:
    with pytest.raises(PlayersError, match=r"J. Oblak \(GK\) is not comparable"):
        index.like(resolve_player(index.table, "Oblak"))


def test_lookup_by_id_exact_name_and_unique_part(index: Index) -> None:
    table = index.table
    assert table.ids[resolve_player(table, "251854")] == 251854
    assert table.text["short_name"][resolve_player(table, "pedri")] == "Pedri"  # beats Pedrinho
    assert table.ids[resolve_player(table, "n'golo KANTE")] == 215914
    assert table.text["long_name"][resolve_player(table, "kylian mbappe")] == "Kylian Mbappé Lottin"
    assert table.text["short_name"][resolve_player(table, "thomas müller")] == "T. Müller"
    with pytest.raises(PlayersError, match="no player with sofifa id 1 "):
        resolve_player(table, "1")
    with pytest.raises(PlayersError, match="no player named like 'Zzyzx'"):
        resolve_player(table, "Zzyzx")


def test_ambiguous_names_list_candidates_exact_first(index: Index) -> None:
    with pytest.raises(AmbiguousPlayerError) as caught:
        resolve_player(index.table, "kante")
    names = [index.table.text["short_name"][row] for row in caught.value.candidates]
    assert names == ["N. Kanté", "O. Kanté", "A. Kanté"]
    assert "matches 3 players" in str(caught.value)


def test_search_ignores_accents_and_case(index: Index) -> None:
    found = [index.table.text["long_name"][row] for row in search(index.table, "MBAPPE")]
    assert "Kylian Mbappé Lottin" in found
    assert search(index.table, "qqqqq") == []


@pytest.mark.parametrize(
    ("text", "role"),
    [
        ("midfielder", "midfielder"),
        ("Attackers", "attacker"),
        ("cm", "midfielder"),
        ("RB", "defender"),
    ],
)
def test_position_words_and_codes(text: str, role: str) -> None:
    assert parse_role(text) == role


@pytest.mark.parametrize(
    ("text", "message"), [("GK", "goalkeepers"), ("winger", "unknown position")]
)
def test_bad_positions(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_role(text)


def test_profile_and_option_validation() -> None:
    with pytest.raises(UsageError, match="pace must be between 0 and 99"):
        Profile("attacker", {"pace": 120})
    with pytest.raises(UsageError, match="at least one rating"):
        Profile("attacker", {})
    assert parse_weight("speed=2.5") == ("pace", 2.5)
    with pytest.raises(UsageError, match="should look like pace=2"):
        parse_weight("pace")
    with pytest.raises(UsageError, match="unknown attribute 'height'"):
        parse_weight("height=2")
    assert parse_money("20M") == 20e6 and parse_money("€500k") == 500e3
    with pytest.raises(UsageError, match="as an amount in euros"):
        parse_money("lots")
    with pytest.raises(UsageError, match="foot must be left or right"):
        Filters(foot="both")
