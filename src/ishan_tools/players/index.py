"""The similarity index: one-hot role plus MinMax-scaled attributes, ranked by cosine.

This is the original project's method, kept as a small (players x 9) matrix instead of an
all-pairs similarity matrix: a query is one matrix-vector product and a partial sort. Ties
rank in file order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ishan_tools.errors import PlayersError, UsageError
from ishan_tools.players.data import (
    ATTRIBUTES,
    GOALKEEPER,
    ROLE_OF_POSITION,
    ROLES,
    PlayerTable,
    load_players,
)
from ishan_tools.players.filters import Filters

# OneHotEncoder orders categories alphabetically; so does the index.
ENCODED_ROLES = tuple(sorted(ROLES))
WEIGHT_KEYS = (*ATTRIBUTES, "role")
ATTRIBUTE_ALIASES = {"speed": "pace", "defense": "defending", "defence": "defending"}
ROLE_WORDS = {
    **{word: "attacker" for word in ("attacker", "attack", "forward", "striker")},
    **{word: "midfielder" for word in ("midfielder", "midfield")},
    **{word: "defender" for word in ("defender", "defence", "defense")},
}
_CACHED_WEIGHTINGS = 16


def parse_role(position: str) -> str:
    """A broad role from a role word (`midfielder`, plural too) or a position code (`CM`)."""
    word = position.strip().lower()
    role = ROLE_WORDS.get(word) or ROLE_WORDS.get(word.removesuffix("s"))
    if role:
        return role
    code = word.upper()
    if code in ROLE_OF_POSITION:
        return ROLE_OF_POSITION[code]
    if code in (GOALKEEPER, "GOALKEEPER"):
        raise UsageError("goalkeepers are not compared: they have no outfield attributes")
    raise UsageError(
        f"unknown position {position!r}: use attacker, midfielder, defender "
        f"or a position code ({', '.join(ROLE_OF_POSITION)})"
    )


def attribute_name(name: str) -> str:
    """The dataset name of an attribute, accepting the original API's aliases (speed, defense)."""
    key = name.strip().lower()
    key = ATTRIBUTE_ALIASES.get(key, key)
    if key not in WEIGHT_KEYS:
        raise UsageError(f"unknown attribute {name!r}: use one of {', '.join(WEIGHT_KEYS)}")
    return key


def parse_weight(text: str) -> tuple[str, float]:
    """`pace=2` -> ("pace", 2.0); `role=0` ignores the role."""
    name, sep, value = text.partition("=")
    try:
        weight = float(value)
    except ValueError:
        weight = -1.0
    if not sep or not math.isfinite(weight) or weight < 0:
        raise UsageError(f"weight {text!r} should look like pace=2 (a number >= 0)")
    return attribute_name(name), weight


@dataclass(frozen=True)
class Profile:
    """What to look for: a role and ratings 0-99; attributes left out are ignored."""

    role: str
    ratings: Mapping[str, float]

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise UsageError(f"role must be one of {', '.join(ROLES)}, not {self.role!r}")
        unknown = set(self.ratings) - set(ATTRIBUTES)
        if unknown:
            raise UsageError(f"unknown attribute(s) {', '.join(sorted(unknown))}")
        if not self.ratings:
            raise UsageError(f"give at least one rating: {', '.join(ATTRIBUTES)}")
        for name, value in self.ratings.items():
            if not 0 <= value <= 99:
                raise UsageError(f"{name} must be between 0 and 99, got {value:g}")

    @classmethod
    def of(cls, position: str, ratings: Mapping[str, float | None]) -> Profile:
        """A profile from a position (role word or code) and ratings under any known alias."""
        given = {
            attribute_name(name): value for name, value in ratings.items() if value is not None
        }
        return cls(parse_role(position), given)


@dataclass(frozen=True)
class Match:
    """One returned player: his record, the cosine score and rating differences."""

    player: dict[str, object]
    score: float
    differences: dict[str, float] = field(default_factory=dict)

    def record(self, *, explain: bool = False) -> dict[str, object]:
        """The player's fields plus `score` (and `differences` when explaining), for output."""
        out = {**self.player, "score": round(self.score, 6)}
        if explain:
            out["differences"] = self.differences
        return out


class Index:
    """Outfield players with all six attributes, encoded for cosine similarity."""

    def __init__(self, table: PlayerTable) -> None:
        attributes = table.attributes
        usable = np.array([role is not None for role in table.roles]) & ~np.isnan(attributes).any(1)
        self.table = table
        self.rows = np.flatnonzero(usable)
        if len(self.rows) == 0:
            raise PlayersError(f"{table.source} has no outfield player with all six attributes")
        kept = attributes[self.rows]
        self.minimum = kept.min(axis=0)
        span = kept.max(axis=0) - self.minimum
        self.span = np.where(span == 0, 1.0, span)
        codes = np.array([ENCODED_ROLES.index(str(table.roles[row])) for row in self.rows])
        onehot = np.zeros((len(self.rows), len(ENCODED_ROLES)))
        onehot[np.arange(len(self.rows)), codes] = 1.0
        self.features = np.hstack([onehot, (kept - self.minimum) / self.span])
        # table row -> its row of `features`, -1 for a player not indexed (the inverse of `rows`)
        self.feature_row = np.full(len(table), -1, dtype=np.intp)
        self.feature_row[self.rows] = np.arange(len(self.rows))
        self._units: dict[tuple[float, ...], NDArray[np.float64]] = {}

    @classmethod
    def from_file(cls, path: Path | None = None, *, role_rule: str = "first") -> Index:
        """Load a players CSV (embedded FIFA 22 when None) and index it."""
        return cls(load_players(path, role_rule=role_rule))

    def __len__(self) -> int:
        return len(self.rows)

    def encode(self, profile: Profile) -> NDArray[np.float64]:
        """The profile in feature space: one-hot role, then ratings scaled like the data."""
        vector = np.zeros(self.features.shape[1])
        vector[ENCODED_ROLES.index(profile.role)] = 1.0
        for i, name in enumerate(ATTRIBUTES):
            if name in profile.ratings:
                vector[len(ENCODED_ROLES) + i] = profile.ratings[name]
        vector[len(ENCODED_ROLES) :] = (vector[len(ENCODED_ROLES) :] - self.minimum) / self.span
        return vector

    def rank(
        self,
        profile: Profile,
        *,
        top: int = 3,
        filters: Filters | None = None,
        weights: Mapping[str, float] | None = None,
        exclude_rows: tuple[int, ...] = (),
    ) -> tuple[list[int], NDArray[np.float64], NDArray[np.float64]]:
        """Table rows of the `top` best matches, their scores, and the feature scale used."""
        if top < 1:
            raise UsageError(f"top must be at least 1, got {top}")
        scale = self._feature_weights(profile, weights or {})
        query = self.encode(profile) * scale
        norm = float(np.sqrt(query @ query))
        scores = self._unit(scale) @ (query / (norm or 1.0))
        if (filters is not None and filters.active) or exclude_rows:
            allowed = np.ones(len(self), dtype=np.bool_)
            if filters is not None:
                allowed &= filters.mask(self.table)[self.rows]
            for row in exclude_rows:
                if self.feature_row[row] >= 0:
                    allowed[self.feature_row[row]] = False
            scores = np.where(allowed, scores, -np.inf)
        best = _best(scores, top)
        return [int(self.rows[i]) for i in best], scores[best], scale

    def similar(
        self,
        profile: Profile,
        *,
        top: int = 3,
        filters: Filters | None = None,
        weights: Mapping[str, float] | None = None,
        exclude_rows: tuple[int, ...] = (),
    ) -> list[Match]:
        """The `top` players most like `profile`, best first (ties in file order)."""
        rows, scores, scale = self.rank(
            profile, top=top, filters=filters, weights=weights, exclude_rows=exclude_rows
        )
        return [
            self._match(row, float(score), profile, scale)
            for row, score in zip(rows, scores, strict=True)
        ]

    def like(
        self,
        row: int,
        *,
        top: int = 3,
        filters: Filters | None = None,
        weights: Mapping[str, float] | None = None,
        include_self: bool = False,
    ) -> list[Match]:
        """Players most like the player in table row `row` (himself excluded unless asked)."""
        if self.feature_row[row] < 0:
            name = self.table.text["short_name"][row]
            positions = self.table.text["player_positions"][row]
            raise PlayersError(
                f"{name} ({positions}) is not comparable: only outfield players with all six "
                "attributes are indexed"
            )
        return self.similar(
            self.profile_of(row),
            top=top,
            filters=filters,
            weights=weights,
            exclude_rows=() if include_self else (row,),
        )

    def profile_of(self, row: int) -> Profile:
        """A player's own role and six ratings as a profile."""
        ratings = dict(zip(ATTRIBUTES, (float(v) for v in self.table.attributes[row]), strict=True))
        return Profile(str(self.table.roles[row]), ratings)

    def _feature_weights(
        self, profile: Profile, weights: Mapping[str, float]
    ) -> NDArray[np.float64]:
        """Per-feature multipliers: sqrt(weight); attributes missing from the profile get 0."""
        role_weight = weights.get("role", 1.0)
        per_attribute = [
            weights.get(name, 1.0) if name in profile.ratings else 0.0 for name in ATTRIBUTES
        ]
        scale: NDArray[np.float64] = np.sqrt(
            np.array([role_weight] * len(ENCODED_ROLES) + per_attribute, dtype=np.float64)
        )
        return scale

    def _unit(self, scale: NDArray[np.float64]) -> NDArray[np.float64]:
        """Weighted features with unit-length rows (cached for a few weightings)."""
        key = tuple(scale.tolist())
        if key not in self._units:
            if len(self._units) >= _CACHED_WEIGHTINGS:
                self._units.pop(next(iter(self._units)))
            weighted = self.features * scale
            norms = np.sqrt(np.einsum("ij,ij->i", weighted, weighted))
            self._units[key] = weighted / np.where(norms == 0, 1.0, norms)[:, None]
        return self._units[key]

    def _match(self, row: int, score: float, profile: Profile, scale: NDArray[np.float64]) -> Match:
        player = self.table.record(row)
        used = [name for j, name in enumerate(ATTRIBUTES) if scale[len(ENCODED_ROLES) + j] > 0]
        gaps = {name: float(self.table.numbers[name][row]) - profile.ratings[name] for name in used}
        ordered = sorted(gaps, key=lambda name: -abs(gaps[name]))
        return Match(player, score, {name: _tidy(gaps[name]) for name in ordered})


def _tidy(value: float) -> float:
    return int(value) if float(value).is_integer() else round(value, 2)


def _best(scores: NDArray[np.float64], top: int) -> list[int]:
    """Positions of the `top` highest finite scores, best first, ties in position order.

    Widens a band below the best score until it holds `top` players, then sorts only the
    band: for small `top` that is several times faster than a partition of every score.
    """
    best = scores.max(initial=-np.inf)
    if not np.isfinite(best):
        return []
    gap = 1e-3
    candidates = np.flatnonzero(scores >= best - gap)
    while len(candidates) < top and gap < 4:  # cosines span [-1, 1]: a gap of 4 takes all
        gap *= 8
        candidates = np.flatnonzero(scores >= best - gap)
    order = candidates[np.argsort(-scores[candidates], kind="stable")][:top]
    return [int(i) for i in order]
