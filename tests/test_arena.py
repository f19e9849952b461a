"""Arena ratings: Bradley-Terry recovers known strengths, intervals cover them and shrink with more games, ties
and undefeated models behave, Elo agrees in order."""

from __future__ import annotations

import math

import numpy as np

from llmlab.monitor.arena import bradley_terry, elo, leaderboard


def _games(strengths: dict[str, float], n: int, seed: int) -> list[tuple[str, str, str]]:
    """n games between random pairs, won with the Bradley-Terry probability of the true Elo-scale strengths."""
    rng = np.random.default_rng(seed)
    names, out = list(strengths), []
    for _ in range(n):
        a, b = rng.choice(names, 2, replace=False)
        p_a = 1 / (1 + 10 ** ((strengths[b] - strengths[a]) / 400))
        out.append((str(a), str(b), "a" if rng.random() < p_a else "b"))
    return out


def test_bradley_terry_recovers_strengths_with_intervals():
    truth = {"v1": 900.0, "v2": 1000.0, "v3": 1100.0}
    board = leaderboard(_games(truth, 3000, seed=0), models=["v1", "v2", "v3", "unserved"])
    assert [r["model"] for r in board] == ["v3", "v2", "v1", "unserved"]
    assert board[-1]["rating"] is None and board[-1]["games"] == 0
    for row in board[:3]:
        low, high = row["ci95"]
        # ratings are anchored at a mean of 1000, as the truth is
        assert low <= truth[row["model"]] <= high and high - low < 60
        assert row["wins"] + row["losses"] + row["ties"] == row["games"]
    few = leaderboard(_games(truth, 60, seed=1))
    width = {r["model"]: r["ci95"][1] - r["ci95"][0] for r in few}
    assert all(width[r["model"]] > r["ci95"][1] - r["ci95"][0] for r in board[:3])
    online = dict(zip(truth, elo(_games(truth, 3000, seed=0), list(truth))))
    assert [r["model"] for r in board[:3]] == sorted(truth, key=lambda m: -online[m])  # Elo agrees on the order


def test_ties_undefeated_and_same_model_games():
    ratings = bradley_terry([("a", "b", "tie")] * 10, ["a", "b"])
    assert abs(ratings[0] - ratings[1]) < 1e-6
    undefeated = bradley_terry([("a", "b", "a")] * 5, ["a", "b"])
    assert np.isfinite(undefeated).all() and undefeated[0] > undefeated[1]
    # with PRIOR_GAMES = 1: 5.5 wins of 6 games -> strength ratio 11 -> 400 log10(11) points apart
    assert math.isclose(undefeated[0] - undefeated[1], 400 * math.log10(11), rel_tol=1e-4)
    board = leaderboard([("a", "a", "a"), ("a", "b", "b")], bootstrap=20)
    assert {r["model"]: r["games"] for r in board} == {"a": 1, "b": 1}
