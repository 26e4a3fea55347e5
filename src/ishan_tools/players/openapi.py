"""What the players API's OpenAPI document says beyond its models, so that a tool can test
it: the 400, 404 and 422 bodies, the accepted positions, codes and weight names as patterns,
the position-or-like rule, example ids; and the handler that keeps a 422 a 422 when the
request held a non-finite number.

JSON has no `Infinity` or `NaN`, but Python's parser reads `1e400` as infinity and accepts the
`NaN` and `Infinity` literals. The models refuse them (`allow_inf_nan=False`), and this
handler writes any that an error echoes back as a string, so the answer is a 422 naming the
field rather than a 500 that also drops the keep-alive connection.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic.config import JsonDict

from ishan_tools.players.data import ATTRIBUTES, ROLE_OF_POSITION
from ishan_tools.players.index import ATTRIBUTE_ALIASES, ROLE_WORDS, WEIGHT_KEYS

__all__ = [
    "BAD_BODY",
    "CODE",
    "NOT_FOUND",
    "POSITION",
    "PROFILE_OR_LIKE",
    "UNPROCESSABLE",
    "WEIGHT_NAME",
    "ErrorMessage",
    "SofifaId",
    "Unprocessable",
    "invalid_request",
]

# outfield players (Messi, Lewandowski): what the examples phase of a schema tester sends
SofifaId = Annotated[int, Path(description="the player's id", examples=[158023, 188545])]
# What the validators accept, as patterns in the OpenAPI document only (a value outside gets
# the validators' own messages): role words (plural too) or outfield position codes, any case.
_CODES = "|".join(ROLE_OF_POSITION)
_WORDS = "|".join(ROLE_WORDS)
POSITION: JsonDict = {"type": "string", "pattern": f"(?i)^ *(?:(?:{_WORDS})s?|{_CODES}) *$"}
CODE: JsonDict = {"type": "string", "pattern": f"(?i)^ *(?:{_CODES}) *$"}
WEIGHT_NAME: JsonDict = {"pattern": f"(?i)^ *(?:{'|'.join([*WEIGHT_KEYS, *ATTRIBUTE_ALIASES])}) *$"}
# `POST /players/similar`: a position with at least one rating, or `like`
PROFILE_OR_LIKE: JsonDict = {
    "anyOf": [
        {
            "required": ["position"],
            "properties": {"position": POSITION},
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "number"}}}
                for name in ATTRIBUTES
            ],
        },
        {"required": ["like"], "properties": {"like": {"type": "integer"}}},
    ]
}


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
