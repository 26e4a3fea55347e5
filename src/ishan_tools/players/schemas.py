"""The bodies and queries of the players API, as pydantic models (the HTTP app: `api.py`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ishan_tools.errors import IshanError
from ishan_tools.players.filters import Filters
from ishan_tools.players.index import attribute_name, parse_role
from ishan_tools.players.openapi import CODE, POSITION, PROFILE_OR_LIKE, WEIGHT_NAME

RoleRule = Literal["first", "majority"]
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
