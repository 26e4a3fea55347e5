"""The web API under a real uvicorn server on 127.0.0.1 (port 0), spoken to with httpx."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ishan_tools.players import Index, Profile
from tests.processes import stop_process

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
    process = subprocess.Popen(
        [str(ishan), "players", "serve", "--host", "127.0.0.1", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        port = None
        while port is None and time.monotonic() < deadline:
            found = re.search(r"running on http://127\.0\.0\.1:(\d+)", process.stderr.readline())
            port = int(found.group(1)) if found else None
        assert port, "serve did not report its address"
        response = httpx.post(
            f"http://127.0.0.1:{port}/find_similar_players/", json=FIND_SIMILAR_BODY
        )
        assert response.status_code == 200 and len(response.json()["similar_players"]) == 3
    finally:
        stop_process(process)
