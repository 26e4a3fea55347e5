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
    from ishan_tools.players.data import ATTRIBUTES as ATTRIBUTES
    from ishan_tools.players.data import ROLE_OF_POSITION as ROLE_OF_POSITION
    from ishan_tools.players.data import ROLES as ROLES
    from ishan_tools.players.data import PlayerTable as PlayerTable
    from ishan_tools.players.data import load_players as load_players
    from ishan_tools.players.data import role_of_positions as role_of_positions
    from ishan_tools.players.filters import Filters as Filters
    from ishan_tools.players.filters import parse_money as parse_money
    from ishan_tools.players.index import Index as Index
    from ishan_tools.players.index import Match as Match
    from ishan_tools.players.index import Profile as Profile
    from ishan_tools.players.index import parse_role as parse_role
    from ishan_tools.players.index import parse_weight as parse_weight
    from ishan_tools.players.lookup import AmbiguousPlayerError as AmbiguousPlayerError
    from ishan_tools.players.lookup import resolve_player as resolve_player
    from ishan_tools.players.lookup import search as search

__all__, __getattr__ = lazy_exports(__name__, __file__)
