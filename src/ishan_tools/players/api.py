"""The web API: the original project's `POST /find_similar_players/`, richer endpoints, and
what the scouting page asks for (suggestions, percentiles, vocabularies). Its bodies are in
`schemas.py`, the page (`/`, `/static`, the vocabulary) in `page.py`.

`create_app(index)` builds the FastAPI app with the index on `app.state`, plus an index for
the other role rule over the same table, so each request may pick its rule; `serve` runs it
under uvicorn. Queries take well under a millisecond, so handlers run on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from ishan_tools.errors import IshanError
from ishan_tools.players.data import ATTRIBUTES, ROLE_RULES
from ishan_tools.players.export import explanation, to_csv
from ishan_tools.players.index import Index, Match, Profile
from ishan_tools.players.lookup import search
from ishan_tools.players.openapi import (
    BAD_BODY,
    NOT_FOUND,
    UNPROCESSABLE,
    SofifaId,
    invalid_request,
)
from ishan_tools.players.page import mount_page, vocabulary, whole
from ishan_tools.players.percentiles import RoleGroups
from ishan_tools.players.schemas import (
    FindSimilarPlayersRequest,
    FindSimilarPlayersResponse,
    PercentileQuery,
    RoleRule,
    SimilarRequest,
)

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

    mount_page(app)
    return app


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
        name: {"value": whole(value), "percentile": percentiles[name]}
        for name, value in values.items()
    }


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
    from ishan_tools._server import run

    run(create_app(index), host, port, on_ready=on_ready, access_log=access_log)
