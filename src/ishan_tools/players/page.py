"""The scouting page: its files under `static/`, mounted at `/` and `/static`, and the
vocabulary its filters offer (`GET /players/vocabulary`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from ishan_tools.players.data import ATTRIBUTES, ROLE_OF_POSITION, ROLE_RULES, ROLES, fold
from ishan_tools.players.filters import FEET
from ishan_tools.players.index import Index

STATIC = Path(__file__).with_name("static")  # the scouting page: index.html, app.js, ...


def mount_page(app: FastAPI) -> None:
    """The page at `/` and its script, styles and icon under `/static`."""

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The scouting page; its script, styles and icon are under /static."""
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


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
        return {"min": whole(float(np.nanmin(values))), "max": whole(float(np.nanmax(values)))}

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


def whole(value: float) -> float | int:
    """`value`, as an int when it is whole (as the data file writes it)."""
    return int(value) if value.is_integer() else value
