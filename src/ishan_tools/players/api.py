"""The web API: the original project's `POST /find_similar_players/` plus richer endpoints.

`create_app(index)` builds the FastAPI app with the index on `app.state`; `serve` runs it
under uvicorn. Queries take well under a millisecond, so handlers run on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ishan_tools.errors import IshanError
from ishan_tools.players.data import ATTRIBUTES
from ishan_tools.players.filters import Filters
from ishan_tools.players.index import Index, Profile, attribute_name, parse_role

Rating = Annotated[float, Field(ge=0, le=99, description="a rating from 0 to 99")]
OptionalRating = Annotated[float | None, Field(default=None, ge=0, le=99)]


def _role(value: str) -> str:
    try:
        return parse_role(value)
    except IshanError as exc:
        raise ValueError(str(exc)) from None


class FindSimilarPlayersRequest(BaseModel):
    """The body of `POST /find_similar_players/`, as the original project defined it."""

    player_positions: str = Field(description="attacker, midfielder, defender or a code (CM)")
    speed: Rating
    physic: Rating
    defense: Rating
    dribbling: Rating
    shooting: Rating
    passing: Rating

    @field_validator("player_positions")
    @classmethod
    def _check_position(cls, value: str) -> str:
        return _role(value)


class FindSimilarPlayersResponse(BaseModel):
    similar_players: list[str]


class SimilarRequest(BaseModel):
    """A profile (or `like`: a sofifa id), how many matches, filters and weights."""

    model_config = ConfigDict(extra="forbid")

    position: str | None = Field(default=None, description="required unless `like` is given")
    pace: OptionalRating
    shooting: OptionalRating
    passing: OptionalRating
    dribbling: OptionalRating
    defending: OptionalRating
    physic: OptionalRating
    like: int | None = Field(default=None, description="sofifa id of a player to match")
    include_self: bool = False
    top: int = Field(default=3, ge=1, le=1000)
    max_age: int | None = Field(default=None, ge=0)
    min_overall: int | None = Field(default=None, ge=0)
    max_value: float | None = Field(default=None, ge=0, description="euros")
    foot: str | None = Field(default=None, pattern="(?i)^(left|right)$")
    league: list[str] = []
    club: list[str] = []
    nationality: list[str] = []
    weights: dict[str, Annotated[float, Field(ge=0)]] = {}
    explain: bool = False

    @field_validator("position")
    @classmethod
    def _check_position(cls, value: str | None) -> str | None:
        return None if value is None else _role(value)

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        try:
            return {attribute_name(name): value for name, value in weights.items()}
        except IshanError as exc:
            raise ValueError(str(exc)) from None


def create_app(index: Index) -> FastAPI:
    """The FastAPI app over `index` (kept on `app.state.index`)."""
    app = FastAPI(
        title="ishan players",
        summary="Find FIFA players similar to a profile or to another player.",
        version="1",
    )
    app.state.index = index

    @app.post("/find_similar_players/", response_model=FindSimilarPlayersResponse)
    async def find_similar_players(
        body: FindSimilarPlayersRequest, request: Request
    ) -> dict[str, list[str]]:
        """The original project's endpoint: the three closest players' short names."""
        ratings = {
            "pace": body.speed,
            "shooting": body.shooting,
            "passing": body.passing,
            "dribbling": body.dribbling,
            "defending": body.defense,
            "physic": body.physic,
        }
        index = _index(request)
        rows, _, _ = index.rank(Profile(body.player_positions, ratings), top=3)
        return {"similar_players": [index.table.text["short_name"][row] for row in rows]}

    @app.post("/players/similar")
    async def similar_players(body: SimilarRequest, request: Request) -> dict[str, Any]:
        """Matches with scores, filters, weights and (with `explain`) rating differences."""
        index = _index(request)
        try:
            filters = Filters(
                max_age=body.max_age,
                min_overall=body.min_overall,
                max_value=body.max_value,
                foot=body.foot,
                leagues=tuple(body.league),
                clubs=tuple(body.club),
                nationalities=tuple(body.nationality),
            )
            if body.like is not None:
                row = _row_of(index, body.like)
                matches = index.like(
                    row,
                    top=body.top,
                    filters=filters,
                    weights=body.weights,
                    include_self=body.include_self,
                )
                profile = index.profile_of(row)
            else:
                if body.position is None:
                    raise HTTPException(422, "give `position` and ratings, or `like`")
                given = {name: getattr(body, name) for name in ATTRIBUTES}
                profile = Profile.of(body.position, given)
                matches = index.similar(
                    profile, top=body.top, filters=filters, weights=body.weights
                )
        except IshanError as exc:
            raise HTTPException(422, str(exc)) from None
        return {
            "profile": {"role": profile.role, **profile.ratings},
            "matches": [match.record(explain=body.explain) for match in matches],
        }

    @app.get("/players/{sofifa_id}")
    async def get_player(sofifa_id: int, request: Request) -> dict[str, object]:
        """One player's fields; `indexed` says whether he can be matched."""
        index = _index(request)
        row = _row_of(index, sofifa_id)
        return {**index.table.record(row), "indexed": bool(index.feature_row[row] >= 0)}

    @app.get("/health")
    async def health(request: Request) -> dict[str, object]:
        index = _index(request)
        return {"status": "ok", "players": len(index), "data": index.table.source}

    return app


def _index(request: Request) -> Index:
    index: Index = request.app.state.index
    return index


def _row_of(index: Index, sofifa_id: int) -> int:
    row = index.table.row_of(sofifa_id)
    if row is None:
        raise HTTPException(404, f"no player with sofifa_id {sofifa_id}")
    return row


def serve(
    index: Index,
    host: str,
    port: int,
    *,
    access_log: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run the API until interrupted, through the toolkit's one launcher (port 0 works and
    `on_ready(url)` gets the real address); a line per request only if `access_log` (it costs
    about half the throughput)."""
    from ishan_tools._cli.server import run

    run(create_app(index), host, port, on_ready=on_ready, access_log=access_log)
