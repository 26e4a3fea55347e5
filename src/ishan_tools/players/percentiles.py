"""Percentile ranks within a role group, as FBref and StatsBomb radars draw them.

A rating's percentile is the share of the group rated below it plus half of those rated the
same (scipy's `percentileofscore(kind="mean")`): the group's median player sits at 50. The
groups are the indexed players of each role (attacker, midfielder, defender) under the
index's role rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from ishan_tools.errors import UsageError
from ishan_tools.players.data import ATTRIBUTES, ROLES
from ishan_tools.players.index import Index


class RoleGroups:
    """Each role's six ratings, sorted per attribute, for percentile look-ups."""

    def __init__(self, index: Index) -> None:
        attributes = index.table.attributes[index.rows]
        roles = np.array([index.table.roles[row] for row in index.rows], dtype=object)
        self.role_rule = index.table.role_rule
        self._sorted: dict[str, NDArray[np.float64]] = {
            role: np.sort(attributes[roles == role], axis=0) for role in ROLES
        }

    def size(self, role: str) -> int:
        """How many indexed players the role group holds."""
        return len(self._group(role))

    def percentiles(self, role: str, ratings: Mapping[str, float]) -> dict[str, float]:
        """Each given rating's percentile (0-100, one decimal) within `role`'s group."""
        group = self._group(role)
        out: dict[str, float] = {}
        for name, value in ratings.items():
            column = group[:, ATTRIBUTES.index(name)]
            below = np.searchsorted(column, value, side="left")
            at_most = np.searchsorted(column, value, side="right")
            out[name] = round(100 * (below + at_most) / 2 / max(len(column), 1), 1)
        return out

    def _group(self, role: str) -> NDArray[np.float64]:
        if role not in self._sorted:
            raise UsageError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        return self._sorted[role]
