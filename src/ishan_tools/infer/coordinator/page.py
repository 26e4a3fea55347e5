"""The chat page at `GET /` of the coordinator, and its assets under `/static`.

The page and its assets are public (a browser cannot send a bearer token on a page load);
the API calls it makes carry the key the user enters, kept in the browser only. Every asset
ships in the package, so the page works without a network beyond the coordinator.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")  # index.html, chat.js, chat.css, icon.svg


def add_page(app: FastAPI) -> None:
    """Serve the chat page at `/` and its script, styles and icon under `/static`."""

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
