"""Similar-player finder over FIFA player data (`ishan players`), usable without Typer.

    from ishan_tools.players import Index, Profile, Filters
    index = Index.from_file()                 # the embedded FIFA 22 data
    profile = Profile.of("midfielder", {"pace": 75, "shooting": 72, "passing": 85,
                                        "dribbling": 80, "defending": 65, "physic": 70})
    for match in index.similar(profile, top=3):
        print(match.player["short_name"], match.score)

The web API lives in `ishan_tools.players.api` (`create_app(index)`); it needs FastAPI.
Names load on first use, so importing the CLI module does not import numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ishan_tools._lazy import lazy_exports

if TYPE_CHECKING:
    from ishan_tools.players.data import (
        ATTRIBUTES,
        ROLE_OF_POSITION,
        ROLES,
        PlayerTable,
        load_players,
        role_of_positions,
    )
    from ishan_tools.players.filters import Filters, parse_money
    from ishan_tools.players.index import Index, Match, Profile, parse_role, parse_weight
    from ishan_tools.players.lookup import AmbiguousPlayerError, resolve_player, search

_HOME = {
    **dict.fromkeys(
        ("ATTRIBUTES", "ROLES", "ROLE_OF_POSITION", "PlayerTable", "load_players"), "data"
    ),
    "role_of_positions": "data",
    **dict.fromkeys(("Filters", "parse_money"), "filters"),
    **dict.fromkeys(("Index", "Match", "Profile", "parse_role", "parse_weight"), "index"),
    **dict.fromkeys(("AmbiguousPlayerError", "resolve_player", "search"), "lookup"),
}
__all__ = [
    "ATTRIBUTES",
    "ROLES",
    "ROLE_OF_POSITION",
    "AmbiguousPlayerError",
    "Filters",
    "Index",
    "Match",
    "PlayerTable",
    "Profile",
    "load_players",
    "parse_money",
    "parse_role",
    "parse_weight",
    "resolve_player",
    "role_of_positions",
    "search",
]


__getattr__ = lazy_exports(__name__, _HOME)
