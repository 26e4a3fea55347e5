"""Hostile numbers: a non-finite number (a JSON `1e400`, `NaN`, `Infinity`) in any number
field, body or query, on the original route and the new ones, is a 422 naming the field, and
the keep-alive connection stays up. Real uvicorn, one real httpx keep-alive connection."""

from __future__ import annotations

import json

import httpx
import pytest

from .conftest import FIND_SIMILAR_BODY


def _local_port(response: httpx.Response) -> int:
    """The client side's port of the connection that carried `response`."""
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


def _with(body: dict[str, object], field: str, literal: str) -> bytes:
    """`body` as JSON with `field` set to `literal`, written as is (json.dumps cannot)."""
    text = json.dumps({**body, field: "@@"})
    return text.replace('"@@"', literal).encode()


ST = {"position": "ST", "pace": 80}
LITERALS = ["1e400", "-1e400", "NaN", "Infinity", "-Infinity"]
BODIES = [
    ("/find_similar_players/", FIND_SIMILAR_BODY, "speed", ["body", "speed"]),
    ("/find_similar_players/", FIND_SIMILAR_BODY, "passing", ["body", "passing"]),
    ("/players/similar", ST, "pace", ["body", "pace"]),
    ("/players/similar", ST, "top", ["body", "top"]),
    ("/players/similar", ST, "like", ["body", "like"]),
    ("/players/similar", ST, "max_value", ["body", "max_value"]),
    ("/players/similar", ST, "min_age", ["body", "min_age"]),
    ("/players/similar.csv", ST, "shooting", ["body", "shooting"]),
    ("/players/similar", ST, "unknown_field", ["body", "unknown_field"]),
]


@pytest.mark.parametrize("literal", LITERALS)
@pytest.mark.parametrize(("path", "body", "field", "loc"), BODIES)
def test_non_finite_body_number_is_a_422_naming_the_field_on_a_live_connection(
    api: httpx.Client,
    path: str,
    body: dict[str, object],
    field: str,
    loc: list[str],
    literal: str,
) -> None:
    first = api.get("/health")
    content = _with(body, field, literal)
    response = api.post(path, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert [error["loc"] for error in errors] == [loc]
    then = api.get("/health")  # the same keep-alive connection answers the next request
    assert then.status_code == 200 and _local_port(then) == _local_port(first)


@pytest.mark.parametrize("literal", LITERALS)
def test_non_finite_weight_and_list_items_are_refused(api: httpx.Client, literal: str) -> None:
    for field, value, loc in (
        ("weights", f'{{"pace": {literal}}}', ["body", "weights", "pace"]),
        ("plays", f'["ST", {literal}]', ["body", "plays", 1]),
    ):
        content = _with(ST, field, value)
        response = api.post(
            "/players/similar", content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert [error["loc"] for error in response.json()["detail"]] == [loc]


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "NaN", "Infinity", "1e400"])
def test_non_finite_query_number_is_a_422_naming_the_field(api: httpx.Client, value: str) -> None:
    first = api.get("/health")
    response = api.get("/players/158023/percentiles", params={"pace": value})
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["query", "pace"]]
    search = api.get("/players/search", params={"q": "messi", "limit": value})
    assert search.status_code == 422
    assert [error["loc"] for error in search.json()["detail"]] == [["query", "limit"]]
    assert api.get(f"/players/{value}").status_code == 404  # a sofifa_id is digits
    then = api.get("/health")
    assert then.status_code == 200 and _local_port(then) == _local_port(first)


def test_a_whole_body_of_nan_is_a_422(api: httpx.Client) -> None:
    for content in (b"NaN", b"[Infinity]", b'{"player_positions": NaN}'):
        response = api.post(
            "/find_similar_players/", content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, response.text
