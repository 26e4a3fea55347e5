"""The players API's error answers, as its OpenAPI document describes them: 404 and 422
bodies, and the handler that keeps a 422 a 422 when the request held a non-finite number.

JSON has no `Infinity` or `NaN`, but Python's parser reads `1e400` as infinity and accepts the
`NaN` and `Infinity` literals. The models refuse them (`allow_inf_nan=False`), and this
handler writes any that an error echoes back as a string, so the answer is a 422 naming the
field rather than a 500 that also drops the keep-alive connection.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

__all__ = [
    "BAD_BODY",
    "NOT_FOUND",
    "UNPROCESSABLE",
    "ErrorMessage",
    "Unprocessable",
    "invalid_request",
]


class ErrorMessage(BaseModel):
    """A refused request, in one sentence."""

    detail: str


class FieldError(BaseModel):
    """One invalid field: where (`loc`, e.g. `["body", "speed"]`), why, and what was sent
    (a non-finite number as the string `inf`, `-inf` or `nan`)."""

    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class Unprocessable(BaseModel):
    """A 422: the invalid fields of a malformed request, or a sentence for a request that is
    well formed but cannot be answered (an unknown club, a goalkeeper's card)."""

    detail: list[FieldError] | str


def _finite(value: Any) -> Any:
    """`value` with every non-finite float (a JSON `1e400`, `NaN`, `Infinity`) written as a
    string, so that an error echoing it can be sent as JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 with every invalid field, as FastAPI answers, but never a 500: the input a field
    error echoes may itself be a non-finite number, which JSON cannot carry."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)


BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorMessage, "description": "The body cannot be read as JSON."}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "No player with that `sofifa_id`."}
}
UNPROCESSABLE: dict[int | str, dict[str, Any]] = {
    422: {"model": Unprocessable, "description": "Invalid fields, or a query that cannot be met."}
}
