"""The arena leaderboard: ratings of the served versions from labelers' blind A/B comparisons.

    board = leaderboard([("chat_dpo", "chat_v2", "b"), ...], models=["chat_dpo", "chat_v2"])
    board[0]  # {"model", "rating", "ci95": [low, high], "elo", "games", "wins", "losses", "ties"}

Bradley-Terry: P(i beats j) = p_i / (p_i + p_j). The strengths are the maximum-likelihood fit, found with Hunter's
(2004) minorise-maximise updates p_i <- W_i / sum_j n_ij / (p_i + p_j), where a tie counts as half a win for each
side (as Chatbot Arena does). A model that never lost (or never won) has no finite MLE, so every pair of models
that met also gets `PRIOR_GAMES` virtual games split evenly: a small pull toward equal strength that vanishes as
real games accumulate. Ratings are on the Elo scale, 400 * log10(p) anchored so the mean rating is 1000, and the
95% intervals are percentiles of the ratings refitted on bootstrap resamples of the comparisons.

The online Elo rating (K = 32, games in the order they were labelled) is shown beside it: it is what most people
know, but it depends on the order of the games, which is why Bradley-Terry is the one the board is sorted by.
Comparisons between two answers of the same model tell nothing about ratings and are left out.
"""

from __future__ import annotations

import math

import numpy as np

PRIOR_GAMES = 1.0  # virtual games (half won by each side) per pair that met: keeps undefeated models finite
ELO_K = 32.0
ELO_BASE = 1000.0
SCORES = {"a": 1.0, "b": 0.0, "tie": 0.5}


def bradley_terry(games: list[tuple[str, str, str]], models: list[str], iters: int = 500, tol: float = 1e-9) -> np.ndarray:
    """Ratings (len(models),) on the Elo scale from games (model_a, model_b, winner in "a"/"b"/"tie")."""
    index = {m: i for i, m in enumerate(models)}
    n = len(models)
    wins = np.zeros((n, n))  # wins[i, j]: how often i beat j (ties: half each)
    for a, b, winner in games:
        wins[index[a], index[b]] += SCORES[winner]
        wins[index[b], index[a]] += 1.0 - SCORES[winner]
    met = (wins + wins.T) > 0
    wins = wins + met * PRIOR_GAMES / 2
    played = wins + wins.T  # (n, n) games between each pair
    p = np.ones(n)
    for _ in range(iters):
        denom = (played / (p[:, None] + p[None, :])).sum(axis=1)
        new = np.where(denom > 0, wins.sum(axis=1) / np.maximum(denom, 1e-300), p)
        new = new / math.exp(np.log(new).mean())  # fix the scale: geometric mean 1
        if np.abs(new - p).max() < tol:
            p = new
            break
        p = new
    return ELO_BASE + 400 * np.log10(p)


def elo(games: list[tuple[str, str, str]], models: list[str], k: float = ELO_K) -> np.ndarray:
    """Online Elo ratings (len(models),) after playing `games` in order from ELO_BASE."""
    index = {m: i for i, m in enumerate(models)}
    r = np.full(len(models), ELO_BASE)
    for a, b, winner in games:
        i, j = index[a], index[b]
        expected = 1 / (1 + 10 ** ((r[j] - r[i]) / 400))
        r[i] += k * (SCORES[winner] - expected)
        r[j] -= k * (SCORES[winner] - expected)
    return r


def leaderboard(games: list[tuple[str, str, str]], models: list[str] = (), bootstrap: int = 200,
                seed: int = 0) -> list[dict]:
    """One row per model (the given ones and any that played), best Bradley-Terry rating first; models without
    games come last with rating None."""
    games = [g for g in games if g[0] != g[1]]
    names = list(dict.fromkeys([*models, *(m for a, b, _ in games for m in (a, b))]))
    rows = {m: {"model": m, "rating": None, "ci95": None, "elo": None, "games": 0, "wins": 0, "losses": 0,
                "ties": 0} for m in names}
    for a, b, winner in games:
        for side, name in (("a", a), ("b", b)):
            rows[name]["games"] += 1
            key = "ties" if winner == "tie" else "wins" if winner == side else "losses"
            rows[name][key] += 1
    playing = [m for m in names if rows[m]["games"]]
    if playing:
        ratings, online = bradley_terry(games, playing), elo(games, playing)
        rng = np.random.default_rng(seed)
        samples = np.array([bradley_terry([games[i] for i in rng.integers(0, len(games), len(games))], playing)
                            for _ in range(bootstrap)])  # (bootstrap, len(playing))
        for i, m in enumerate(playing):
            low, high = np.percentile(samples[:, i], [2.5, 97.5]) if bootstrap else (ratings[i], ratings[i])
            rows[m].update(rating=round(float(ratings[i]), 1), ci95=[round(float(low), 1), round(float(high), 1)],
                           elo=round(float(online[i]), 1))
    return sorted(rows.values(), key=lambda r: (r["rating"] is None, -(r["rating"] or 0)))
