"""The web API and the scouting page: the original project's `POST /find_similar_players/`, richer
endpoints, and the page at `/` with what it asks for (suggestions, percentiles, vocabularies).

`create_app(index)` builds the FastAPI app with the index on `app.state`, plus an index for
the other role rule over the same table, so each request may pick its rule; `serve` runs it
under uvicorn. Queries take well under a millisecond, so handlers run on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ishan_tools.errors import IshanError
from ishan_tools.players.data import ATTRIBUTES, ROLE_OF_POSITION, ROLE_RULES, ROLES, fold
from ishan_tools.players.export import explanation, to_csv
from ishan_tools.players.filters import FEET, Filters
from ishan_tools.players.index import Index, Match, Profile, attribute_name, parse_role
from ishan_tools.players.lookup import search
from ishan_tools.players.openapi import (
    BAD_BODY,
    CODE,
    NOT_FOUND,
    POSITION,
    PROFILE_OR_LIKE,
    UNPROCESSABLE,
    WEIGHT_NAME,
    SofifaId,
    invalid_request,
)
from ishan_tools.players.percentiles import RoleGroups

STATIC = Path(__file__).with_name("static")  # the scouting page: index.html, app.js, ...
RoleRule = Literal["first", "majority"]
# what a name suggestion shows (GET /players/search)
SUGGESTION_FIELDS = (
    "sofifa_id",
    "short_name",
    "long_name",
    "club_name",
    "player_positions",
    "age",
    "overall",
)
Rating = Annotated[float, Field(ge=0, le=99, description="a rating from 0 to 99")]
OptionalRating = Annotated[float | None, Field(default=None, ge=0, le=99)]


def _role(value: str) -> str:
    try:
        return parse_role(value)
    except IshanError as exc:
        raise ValueError(str(exc)) from None


class FindSimilarPlayersRequest(BaseModel):
    """The body of `POST /find_similar_players/`, as the original project defined it."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False)  # no "75" or true for 75

    player_positions: str = Field(
        description="attacker, midfielder, defender or a code (CM)", json_schema_extra=POSITION
    )
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

    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, json_schema_extra=PROFILE_OR_LIKE
    )

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
    min_age: int | None = Field(default=None, ge=0)
    max_age: int | None = Field(default=None, ge=0)
    min_overall: int | None = Field(default=None, ge=0)
    max_value: float | None = Field(default=None, ge=0, description="euros")
    foot: str | None = Field(default=None, pattern="(?i)^(left|right)$")
    plays: list[str] = Field(
        default=[],
        description="position codes: he lists any of them",
        json_schema_extra={"items": CODE},
    )
    league: list[str] = []
    club: list[str] = []
    nationality: list[str] = []
    weights: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default={}, json_schema_extra={"propertyNames": WEIGHT_NAME}
    )
    explain: bool = False
    role_from: RoleRule | None = Field(
        default=None, description="how positions become roles; default: the server's rule"
    )

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

    def filters(self) -> Filters:
        return Filters(
            min_age=self.min_age,
            max_age=self.max_age,
            min_overall=self.min_overall,
            max_value=self.max_value,
            foot=self.foot,
            leagues=tuple(self.league),
            clubs=tuple(self.club),
            nationalities=tuple(self.nationality),
            plays=tuple(self.plays),
        )


class PercentileQuery(BaseModel):
    """The role rule and, optionally, a profile's ratings to place beside the player's."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    role_from: RoleRule | None = None
    pace: OptionalRating
    shooting: OptionalRating
    passing: OptionalRating
    dribbling: OptionalRating
    defending: OptionalRating
    physic: OptionalRating


def create_app(index: Index) -> FastAPI:
    """The FastAPI app over `index` (kept on `app.state.index`) and the page at `/`."""
    app = FastAPI(
        title="ishan players",
        summary="Find FIFA players similar to a profile or to another player.",
        version="1",
    )
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.state.index = index
    app.state.indexes = {
        rule: Index(index.table.with_role_rule(rule)) if rule != index.table.role_rule else index
        for rule in ROLE_RULES
    }
    app.state.groups = {rule: RoleGroups(built) for rule, built in app.state.indexes.items()}
    app.state.vocabulary = vocabulary(index)

    @app.post(
        "/find_similar_players/",
        response_model=FindSimilarPlayersResponse,
        responses={**BAD_BODY, **UNPROCESSABLE},
    )
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

    @app.post("/players/similar", responses={**BAD_BODY, **NOT_FOUND, **UNPROCESSABLE})
    async def similar_players(body: SimilarRequest, request: Request) -> dict[str, Any]:
        """Matches with scores, filters, weights and (with `explain`) rating differences and
        a one-line `explanation` (the CLI's `--explain`)."""
        rule, profile, matches = _answer(body, request)
        records = [match.record(explain=body.explain) for match in matches]
        if body.explain:
            for record, match in zip(records, matches, strict=True):
                record["explanation"] = explanation(match, profile)
        return {
            "profile": {"role": profile.role, **profile.ratings},
            "role_from": rule,
            "matches": records,
        }

    @app.post(
        "/players/similar.csv",
        response_class=Response,
        responses={
            200: {"content": {"text/csv": {}}, "description": "one line per match"},
            **BAD_BODY,
            **NOT_FOUND,
            **UNPROCESSABLE,
        },
    )
    async def similar_players_csv(body: SimilarRequest, request: Request) -> Response:
        """The same matches as CSV, exactly as `ishan players ... --csv` prints them
        (`explain` adds the `differences` column)."""
        _, _, matches = _answer(body, request)
        return Response(
            to_csv(matches, explain=body.explain),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="ishan-players.csv"'},
        )

    @app.get("/players/search", responses=UNPROCESSABLE)
    async def search_players(
        request: Request,
        q: Annotated[str, Query(min_length=1, description="part of a short or full name")],
        limit: Annotated[int, Query(ge=1, le=100)] = 8,
    ) -> dict[str, Any]:
        """Players whose name contains `q`, accents and case ignored (as `ishan players
        search`): exact names first, then by overall. `total` counts every match."""
        index = _index(request)
        try:
            rows = search(index.table, q)
        except IshanError as exc:
            raise HTTPException(422, str(exc)) from None
        players = []
        for row in rows[:limit]:
            record = index.table.record(row)
            shown = {key: record[key] for key in SUGGESTION_FIELDS}
            players.append({**shown, "indexed": _indexed(index, row)})
        return {"total": len(rows), "players": players}

    @app.get("/players/vocabulary")
    async def players_vocabulary(request: Request) -> dict[str, Any]:
        """What the filters can take: leagues, clubs, nationalities, position codes, feet,
        role rules, and the age and value ranges of the indexed players."""
        vocabulary: dict[str, Any] = request.app.state.vocabulary
        return vocabulary

    @app.get("/players/{sofifa_id:int}", responses={**NOT_FOUND, **UNPROCESSABLE})
    async def get_player(
        sofifa_id: SofifaId, request: Request, role_from: RoleRule | None = None
    ) -> dict[str, object]:
        """One player's fields (his `role` under `role_from`); `indexed` says whether he can
        be matched."""
        index = _index(request, role_from)
        row = _row_of(index, sofifa_id)
        return {**index.table.record(row), "indexed": _indexed(index, row)}

    @app.get("/players/{sofifa_id:int}/percentiles", responses={**NOT_FOUND, **UNPROCESSABLE})
    async def player_percentiles(
        sofifa_id: SofifaId, request: Request, query: Annotated[PercentileQuery, Query()]
    ) -> dict[str, Any]:
        """The player's six ratings as percentile ranks within his role group (attackers,
        midfielders or defenders under `role_from`), and any profile ratings given, ranked
        in the same group: what the page's radar draws."""
        index = _index(request, query.role_from)
        row = _row_of(index, sofifa_id)
        if not _indexed(index, row):
            name = index.table.text["short_name"][row]
            positions = index.table.text["player_positions"][row]
            raise HTTPException(
                422, f"{name} ({positions}) has no role group: only outfield players are ranked"
            )
        role = str(index.table.roles[row])
        groups: RoleGroups = request.app.state.groups[index.table.role_rule]
        own = {name: float(index.table.numbers[name][row]) for name in ATTRIBUTES}
        given = {name: getattr(query, name) for name in ATTRIBUTES}
        profile = {name: value for name, value in given.items() if value is not None}
        return {
            "sofifa_id": sofifa_id,
            "short_name": index.table.text["short_name"][row],
            "role_from": index.table.role_rule,
            "group": role,
            "group_size": groups.size(role),
            "player": _ranked(own, groups.percentiles(role, own)),
            "profile": _ranked(profile, groups.percentiles(role, profile)),
        }

    @app.get("/health")
    async def health(request: Request) -> dict[str, object]:
        index = _index(request)
        return {"status": "ok", "players": len(index), "data": index.table.source}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The scouting page; its script, styles and icon are under /static."""
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def vocabulary(index: Index) -> dict[str, Any]:
    """The values the page's filters offer, taken from the indexed players."""
    table = index.table

    def distinct(column: str) -> list[str]:
        if column not in table.text:
            return []
        values = {table.text[column][row] for row in index.rows.tolist()} - {""}
        return sorted(values, key=fold)

    def span(column: str) -> dict[str, float | None]:
        if column not in table.numbers:
            return {"min": None, "max": None}
        values = table.numbers[column][index.rows]
        return {"min": _whole(float(np.nanmin(values))), "max": _whole(float(np.nanmax(values)))}

    return {
        "players": len(index),
        "data": table.source,
        "role_from": table.role_rule,
        "role_rules": list(ROLE_RULES),
        "roles": list(ROLES),
        "attributes": list(ATTRIBUTES),
        "positions": {
            role: [code for code, of in ROLE_OF_POSITION.items() if of == role] for role in ROLES
        },
        "feet": list(FEET),
        "leagues": distinct("league_name"),
        "clubs": distinct("club_name"),
        "nationalities": distinct("nationality_name"),
        "age": span("age"),
        "overall": span("overall"),
        "value_eur": span("value_eur"),
    }


def _answer(body: SimilarRequest, request: Request) -> tuple[str, Profile, list[Match]]:
    """The role rule used, the profile and the matches a `SimilarRequest` asks for."""
    index = _index(request, body.role_from)
    rule = index.table.role_rule
    try:
        filters = body.filters()
        if body.like is not None:
            row = _row_of(index, body.like)
            matches = index.like(
                row,
                top=body.top,
                filters=filters,
                weights=body.weights,
                include_self=body.include_self,
            )
            return rule, index.profile_of(row), matches
        if body.position is None:
            raise HTTPException(422, "give `position` and ratings, or `like`")
        given = {name: getattr(body, name) for name in ATTRIBUTES}
        profile = Profile.of(body.position, given)
        matches = index.similar(profile, top=body.top, filters=filters, weights=body.weights)
    except IshanError as exc:
        raise HTTPException(422, str(exc)) from None
    return rule, profile, matches


def _index(request: Request, role_from: str | None = None) -> Index:
    """The index of role rule `role_from` (None: the one the server was started with)."""
    index: Index = (
        request.app.state.index if role_from is None else request.app.state.indexes[role_from]
    )
    return index


def _row_of(index: Index, sofifa_id: int) -> int:
    row = index.table.row_of(sofifa_id)
    if row is None:
        raise HTTPException(404, f"no player with sofifa_id {sofifa_id}")
    return row


def _indexed(index: Index, row: int) -> bool:
    return bool(index.feature_row[row] >= 0)


def _ranked(values: dict[str, float], percentiles: dict[str, float]) -> dict[str, Any]:
    return {
        name: {"value": _whole(value), "percentile": percentiles[name]}
        for name, value in values.items()
    }


def _whole(value: float) -> float | int:
    return int(value) if value.is_integer() else value


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
