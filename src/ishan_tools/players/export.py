"""Matches as plain text, shared by the CLI and the web page: CSV and one-line explanations."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from ishan_tools.players.data import ATTRIBUTES
from ishan_tools.players.index import Match, Profile

CSV_FIELDS = (
    "rank",
    "sofifa_id",
    "short_name",
    "long_name",
    "club_name",
    "league_name",
    "nationality_name",
    "age",
    "overall",
    "value_eur",
    "preferred_foot",
    "player_positions",
    "role",
    *ATTRIBUTES,
    "score",
)


def explanation(match: Match, profile: Profile, *, most: int = 3) -> str:
    """The attributes that differ most from the profile, as signed rating points."""
    parts = [f"{name} {gap:+g}" for name, gap in list(match.differences.items())[:most] if gap]
    if match.player["role"] != profile.role:
        parts.insert(0, f"role {match.player['role']}")
    return ", ".join(parts) or "identical ratings"


def to_csv(matches: Sequence[Match], *, explain: bool) -> str:
    """One line per match with the CSV_FIELDS (plus `differences` as `name:+n` pairs)."""
    buffer = io.StringIO()
    fields = [*CSV_FIELDS, "differences"] if explain else list(CSV_FIELDS)
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for rank, match in enumerate(matches, start=1):
        row: dict[str, object] = {**match.record(), "rank": rank}
        if explain:
            row["differences"] = " ".join(f"{k}:{v:+g}" for k, v in match.differences.items())
        writer.writerow(row)
    return buffer.getvalue()
