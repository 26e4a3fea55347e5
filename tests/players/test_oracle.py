"""The default ranking equals a straightforward scikit-learn implementation of the original
project's method (one-hot role + MinMax + cosine over all outfield players), on the real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

from ishan_tools.players import Index, Profile
from ishan_tools.players.data import EMBEDDED_DATA

SIX = ["pace", "shooting", "passing", "dribbling", "defending", "physic"]
# The original project's mapping, written out again independently of the package.
ROLES = {
    "ST": "attacker",
    "CF": "attacker",
    "LW": "attacker",
    "RW": "attacker",
    "CAM": "midfielder",
    "CM": "midfielder",
    "CDM": "midfielder",
    "LM": "midfielder",
    "RM": "midfielder",
    "CB": "defender",
    "LB": "defender",
    "RB": "defender",
    "LWB": "defender",
    "RWB": "defender",
}


class SklearnOracle:
    """The original project's pipeline in pandas + scikit-learn, ranking ties in dataset order."""

    def __init__(self) -> None:
        frame = pd.read_csv(EMBEDDED_DATA).dropna(subset=SIX)
        frame["role"] = frame["player_positions"].str.split(",").str[0].str.strip().map(ROLES)
        self.frame = frame.dropna(subset=["role"]).reset_index(drop=True)
        self.encoder = OneHotEncoder(sparse_output=False).fit(self.frame[["role"]])
        self.scaler = MinMaxScaler().fit(self.frame[SIX])
        self.features = np.hstack(
            [self.encoder.transform(self.frame[["role"]]), self.scaler.transform(self.frame[SIX])]
        )

    def ranking(self, role: str, ratings: dict[str, float], top: int) -> list[int]:
        query = np.hstack(
            [
                self.encoder.transform(pd.DataFrame({"role": [role]})),
                self.scaler.transform(pd.DataFrame([ratings])[SIX]),
            ]
        )
        scores = cosine_similarity(query, self.features)[0]
        order = np.argsort(-scores, kind="stable")[:top]
        return [int(i) for i in self.frame["sofifa_id"].to_numpy()[order]]


@pytest.fixture(scope="module")
def oracle() -> SklearnOracle:
    return SklearnOracle()


def test_same_players_are_indexed(oracle: SklearnOracle, index: Index) -> None:
    assert len(index) == len(oracle.frame) == 17107
    assert index.table.ids[index.rows].tolist() == oracle.frame["sofifa_id"].tolist()


def test_original_example_matches_oracle(oracle: SklearnOracle, index: Index) -> None:
    ratings = {"pace": 75, "shooting": 72, "passing": 85, "dribbling": 80, "defending": 65}
    ratings["physic"] = 70
    ours = [m.player["sofifa_id"] for m in index.similar(Profile("midfielder", ratings), top=3)]
    assert ours == oracle.ranking("midfielder", ratings, 3)


def test_random_profiles_rank_like_oracle(oracle: SklearnOracle, index: Index) -> None:
    rng = np.random.default_rng(2022)
    for _ in range(300):
        role = str(rng.choice(["attacker", "midfielder", "defender"]))
        ratings = {name: float(v) for name, v in zip(SIX, rng.integers(0, 100, 6), strict=True)}
        top = int(rng.integers(1, 25))
        ours = [m.player["sofifa_id"] for m in index.similar(Profile(role, ratings), top=top)]
        assert ours == oracle.ranking(role, ratings, top), (role, ratings, top)


def test_players_own_ratings_profile_ranks_them_first(oracle: SklearnOracle, index: Index) -> None:
    frame = oracle.frame.set_index("short_name")
    for name in ("L. Messi", "K. De Bruyne", "V. van Dijk", "N. Kanté", "Pedri", "K. Mbappé"):
        player = frame.loc[name]
        ratings = {attribute: float(player[attribute]) for attribute in SIX}
        matches = index.similar(Profile(str(player["role"]), ratings), top=2)
        assert matches[0].player["short_name"] == name
        assert matches[0].score == pytest.approx(1.0)
        assert oracle.ranking(str(player["role"]), ratings, 1) == [int(player["sofifa_id"])]


def test_tied_players_rank_in_dataset_order(index: Index) -> None:
    features = index.features
    _, first, counts = np.unique(features, axis=0, return_index=True, return_counts=True)
    twin = int(first[np.argmax(counts)])
    assert counts.max() > 1, "the data has players with identical role and ratings"
    profile = index.profile_of(int(index.rows[twin]))
    matches = index.similar(profile, top=int(counts.max()))
    twins = [i for i in range(len(index)) if (features[i] == features[twin]).all()]
    assert [m.player["sofifa_id"] for m in matches] == [
        int(index.table.ids[index.rows[i]]) for i in twins
    ]
