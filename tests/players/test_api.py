"""The web API under a real uvicorn server on 127.0.0.1 (port 0), spoken to with httpx."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import pytest

from ishan_tools.players import Index, Profile
from tests.harness.processes import start_server, stop_process

from .conftest import EXAMPLE_RATINGS, FIND_SIMILAR_BODY


def test_find_similar_players_returns_three_short_names(api: httpx.Client, index: Index) -> None:
    response = api.post("/find_similar_players/", json=FIND_SIMILAR_BODY)
    assert response.status_code == 200
    expected = [
        m.player["short_name"] for m in index.similar(Profile("midfielder", EXAMPLE_RATINGS), top=3)
    ]
    assert response.json() == {"similar_players": expected}


def test_find_similar_players_accepts_position_codes(api: httpx.Client) -> None:
    by_word = api.post("/find_similar_players/", json=FIND_SIMILAR_BODY).json()
    by_code = api.post(
        "/find_similar_players/", json={**FIND_SIMILAR_BODY, "player_positions": "CAM"}
    )
    assert by_code.json() == by_word


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"speed": 100}, "speed", "less than or equal to 99"),
        ({"passing": -1}, "passing", "greater than or equal to 0"),
        ({"player_positions": "goalkeeper"}, "player_positions", "goalkeepers are not compared"),
        ({"player_positions": "libero"}, "player_positions", "unknown position 'libero'"),
        ({"physic": "strong"}, "physic", "valid number"),
    ],
)
def test_find_similar_players_validation_is_422_with_a_message(
    api: httpx.Client, change: dict[str, object], field: str, message: str
) -> None:
    response = api.post("/find_similar_players/", json={**FIND_SIMILAR_BODY, **change})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert errors[0]["loc"] == ["body", field] and message in errors[0]["msg"]


def test_find_similar_players_requires_every_field(api: httpx.Client) -> None:
    body = {key: value for key, value in FIND_SIMILAR_BODY.items() if key != "dribbling"}
    response = api.post("/find_similar_players/", json=body)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == [
        "body",
        "dribbling",
    ]


def test_rich_endpoint_with_filters_weights_and_explanations(
    api: httpx.Client, index: Index
) -> None:
    body = {"position": "midfielder", **EXAMPLE_RATINGS, "top": 5, "max_age": 24, "foot": "left"}
    body |= {"weights": {"speed": 2}, "explain": True, "league": ["Premier League"]}
    response = api.post("/players/similar", json=body)
    assert response.status_code == 200
    result = response.json()
    assert result["profile"] == {"role": "midfielder", **EXAMPLE_RATINGS}
    matches = result["matches"]
    assert len(matches) == 5
    assert all(m["age"] <= 24 and m["preferred_foot"] == "Left" for m in matches)
    assert all("Premier League" in m["league_name"] and len(m["differences"]) == 6 for m in matches)
    from ishan_tools.players import Filters

    expected = index.similar(
        Profile("midfielder", EXAMPLE_RATINGS),
        top=5,
        weights={"pace": 2},
        filters=Filters(max_age=24, foot="left", leagues=("Premier League",)),
    )
    assert [m["sofifa_id"] for m in matches] == [m.player["sofifa_id"] for m in expected]
    assert [m["score"] for m in matches] == pytest.approx([m.score for m in expected])


def test_rich_endpoint_like_a_player(api: httpx.Client) -> None:
    matches = api.post("/players/similar", json={"like": 251854, "top": 2}).json()["matches"]
    assert len(matches) == 2 and 251854 not in [m["sofifa_id"] for m in matches]
    kept = api.post("/players/similar", json={"like": 251854, "include_self": True}).json()
    assert kept["matches"][0]["short_name"] == "Pedri"
    assert api.post("/players/similar", json={"like": 1}).status_code == 404
    goalkeeper = api.post("/players/similar", json={"like": 200389})
    assert goalkeeper.status_code == 422 and "not comparable" in goalkeeper.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"pace": 80}, "give `position` and ratings, or `like`"),
        ({"position": "ST"}, "at least one rating"),
        ({"position": "ST", "pace": 80, "club": ["Nowhere FC"]}, "no club"),
        ({"position": "ST", "pace": 80, "weights": {"height": 1}}, "unknown attribute 'height'"),
        ({"position": "ST", "pace": 80, "colour": "red"}, "Extra inputs are not permitted"),
        ({"position": "ST", "pace": 80, "foot": "both"}, "should match pattern"),
    ],
)
def test_rich_endpoint_rejects_bad_requests(
    api: httpx.Client, body: dict[str, object], message: str
) -> None:
    response = api.post("/players/similar", json=body)
    assert response.status_code == 422 and message in response.text


def test_get_player_health_and_docs(api: httpx.Client, index: Index) -> None:
    messi = api.get("/players/158023").json()
    assert messi["long_name"] == "Lionel Andrés Messi Cuccittini" and messi["role"] == "attacker"
    assert messi["indexed"] is True and messi["pace"] == 85
    assert api.get("/players/200389").json()["indexed"] is False
    missing = api.get("/players/1")
    assert missing.status_code == 404 and missing.json() == {"detail": "no player with sofifa_id 1"}
    assert api.get("/health").json() == {
        "status": "ok",
        "players": len(index),
        "data": index.table.source,
    }
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/find_similar_players/", "/players/similar", "/players/{sofifa_id}", "/health"} <= set(
        paths
    )


def test_serve_command_runs_the_api_until_terminated() -> None:
    ishan = Path(sys.executable).with_name("ishan")
    process, url = start_server(
        [str(ishan), "players", "serve", "--host", "127.0.0.1", "--port", "0"], timeout=60
    )
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/?", url), url
        response = httpx.post(f"{url.rstrip('/')}/find_similar_players/", json=FIND_SIMILAR_BODY)
        assert response.status_code == 200 and len(response.json()["similar_players"]) == 3
    finally:
        stop_process(process)


def test_rich_endpoint_min_age_plays_role_rule_and_explanations(
    api: httpx.Client, index: Index
) -> None:
    body = {
        "position": "CM",
        **EXAMPLE_RATINGS,
        "top": 8,
        "min_age": 27,
        "max_age": 29,
        "plays": ["cam"],
    }
    result = api.post("/players/similar", json={**body, "explain": True}).json()
    matches = result["matches"]
    assert result["role_from"] == "first" and len(matches) == 8
    for match in matches:
        assert 27 <= match["age"] <= 29 and "CAM" in match["player_positions"].split(", ")
        parts = [f"{k} {v:+g}" for k, v in list(match["differences"].items())[:3] if v]
        assert match["explanation"] == ", ".join(parts)
    from ishan_tools.players import Filters

    filters = Filters(min_age=27, max_age=29, plays=("CAM",))
    expected = index.similar(Profile("midfielder", EXAMPLE_RATINGS), top=8, filters=filters)
    assert [m["sofifa_id"] for m in matches] == [m.player["sofifa_id"] for m in expected]
    majority = api.post("/players/similar", json={**body, "role_from": "majority"}).json()
    assert majority["role_from"] == "majority"
    majority_index = Index(index.table.with_role_rule("majority"))
    expected = majority_index.similar(
        Profile("midfielder", EXAMPLE_RATINGS), top=8, filters=filters
    )
    assert [m["sofifa_id"] for m in majority["matches"]] == [
        m.player["sofifa_id"] for m in expected
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"min_age": 30, "max_age": 20}, "min age 30 is above max age 20"),
        ({"plays": ["GK"]}, "goalkeepers are not compared"),
        ({"plays": ["XX"]}, "unknown position code 'XX'"),
        ({"role_from": "most"}, "'first' or 'majority'"),
    ],
)
def test_rich_endpoint_rejects_bad_new_filters(
    api: httpx.Client, change: dict[str, object], message: str
) -> None:
    response = api.post("/players/similar", json={"position": "ST", "pace": 80, **change})
    assert response.status_code == 422 and message in response.text


def test_csv_endpoint_prints_what_the_cli_prints(api: httpx.Client) -> None:
    from typer.testing import CliRunner

    from ishan_tools.cli import app

    body = {"position": "midfielder", **EXAMPLE_RATINGS, "top": 5, "max_age": 25, "explain": True}
    response = api.post("/players/similar.csv", json=body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    args = [
        "players",
        "--position",
        "midfielder",
        *(f"--{k}={v}" for k, v in EXAMPLE_RATINGS.items()),
    ]
    cli = CliRunner().invoke(app, [*args, "--top", "5", "--max-age", "25", "--csv", "--explain"])
    assert cli.exit_code == 0 and response.text == cli.stdout
    assert response.text.splitlines()[0].endswith(",score,differences")


def test_search_suggests_players_ignoring_accents_and_case(api: httpx.Client) -> None:
    found = api.get("/players/search", params={"q": "KANTE"}).json()
    assert found["total"] == 3
    assert [p["short_name"] for p in found["players"]] == ["N. Kanté", "O. Kanté", "A. Kanté"]
    assert found["players"][0] == {
        "sofifa_id": 215914,
        "short_name": "N. Kanté",
        "long_name": "N'Golo Kanté",
        "club_name": "Chelsea",
        "player_positions": "CDM, CM",
        "age": 30,
        "overall": 90,
        "indexed": True,
    }
    silva = api.get("/players/search", params={"q": "silva", "limit": 4}).json()
    assert len(silva["players"]) == 4 and silva["total"] > 4
    oblak = api.get("/players/search", params={"q": "oblak"}).json()["players"]
    assert oblak[0]["indexed"] is False
    assert api.get("/players/search", params={"q": "qqqqq"}).json() == {"total": 0, "players": []}
    assert api.get("/players/search", params={"q": ""}).status_code == 422


def test_vocabulary_lists_what_the_filters_take(api: httpx.Client, index: Index) -> None:
    vocabulary = api.get("/players/vocabulary").json()
    assert vocabulary["players"] == len(index) and vocabulary["role_from"] == "first"
    assert vocabulary["role_rules"] == ["first", "majority"]
    assert vocabulary["positions"]["defender"] == ["CB", "LB", "RB", "LWB", "RWB"]
    assert "English Premier League" in vocabulary["leagues"] and len(vocabulary["leagues"]) > 40
    assert "Atlético de Madrid" in vocabulary["clubs"] and "Brazil" in vocabulary["nationalities"]
    assert vocabulary["clubs"].index("Arsenal") < vocabulary["clubs"].index("Atlético de Madrid")
    assert vocabulary["age"]["min"] == 16 and vocabulary["value_eur"]["max"] == 194_000_000


def test_percentiles_rank_within_the_role_group(api: httpx.Client, index: Index) -> None:
    import numpy as np

    answer = api.get("/players/251854/percentiles", params={"pace": 75, "passing": 85}).json()
    assert answer["short_name"] == "Pedri" and answer["group"] == "midfielder"
    group = [row for row in index.rows if index.table.roles[row] == "midfielder"]
    assert answer["group_size"] == len(group) and answer["role_from"] == "first"

    def percentile(name: str, value: float) -> float:
        column = index.table.numbers[name][group]
        return round(100 * (np.sum(column < value) + np.sum(column == value) / 2) / len(group), 1)

    for name in EXAMPLE_RATINGS:
        value = index.table.numbers[name][index.table.row_of(251854)]
        assert answer["player"][name] == {"value": value, "percentile": percentile(name, value)}
    assert answer["profile"] == {
        "pace": {"value": 75, "percentile": percentile("pace", 75)},
        "passing": {"value": 85, "percentile": percentile("passing", 85)},
    }
    grealish = api.get("/players/206517/percentiles", params={"role_from": "majority"}).json()
    assert grealish["group"] == "midfielder" and grealish["profile"] == {}
    assert api.get("/players/206517/percentiles").json()["group"] == "attacker"
    oblak = api.get("/players/200389/percentiles")
    assert oblak.status_code == 422 and "no role group" in oblak.json()["detail"]
    assert api.get("/players/1/percentiles").status_code == 404
    assert api.get("/players/251854/percentiles", params={"pace": 100}).status_code == 422


def test_player_card_under_either_role_rule(api: httpx.Client) -> None:
    assert api.get("/players/206517").json()["role"] == "attacker"
    assert api.get("/players/206517", params={"role_from": "majority"}).json()["role"] == (
        "midfielder"
    )


def test_page_and_its_assets_are_served_and_new_endpoints_documented(api: httpx.Client) -> None:
    page = api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="(static/[^"]+)"', page.text)
    assert len(assets) == 3
    for asset in assets:
        assert api.get(f"/{asset}").status_code == 200, asset
    assert api.get("/static/radar.js").status_code == 200  # imported by app.js
    paths = api.get("/openapi.json").json()["paths"]
    assert {
        "/players/similar.csv",
        "/players/search",
        "/players/vocabulary",
        "/players/{sofifa_id}/percentiles",
    } <= set(paths)
    assert "/" not in paths
