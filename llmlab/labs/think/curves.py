"""The System 2 lab's curves from pools of attempts: accuracy of each strategy at k samples per problem, coverage,
and the fit of coverage against k.

    pools[i]: problem i's N attempts in the order drawn (llmlab.engine.thinking.Attempt), scores[i]: their verifier
    log-odds (or None)
    majority_at(pools, k), best_of_at(pools, k, by="verifier" | "likelihood", scores=...), coverage_at(pools, k)
    fit = fit_coverage(ks, coverages)        # {"a", "b", "r2"}: -log(coverage) = a * k^b (Brown et al. 2024)

A strategy's accuracy at k is the mean over problems of its mean over the N // k disjoint blocks of k consecutive
samples (every sample used once, as k sequential calls would have drawn them), so small k is measured on N/k
repeats rather than on one. Coverage is the unbiased pass@k over all N samples.
"""

from __future__ import annotations

import math

import numpy as np

from llmlab.engine.strategies import best_of, majority_vote, pass_at_k
from llmlab.errors import LlmlabError


def _blocks(n: int, k: int) -> list[range]:
    if not 1 <= k <= n:
        raise LlmlabError(f"k={k} needs at least k samples per problem; {n} were drawn")
    return [range(start, start + k) for start in range(0, n - k + 1, k)]


def majority_at(pools: list[list], k: int, right) -> list[float]:
    """Per problem, the share of its k-blocks whose majority answer is right (`right(i, answer)`: the checker)."""
    out = []
    for i, pool in enumerate(pools):
        votes = [majority_vote([pool[j].answer for j in block])[0] for block in _blocks(len(pool), k)]
        out.append(sum(v is not None and right(i, v) for v in votes) / len(votes))
    return out


def best_of_at(pools: list[list], k: int, by: str, scores: list[list[float]] | None = None) -> list[float]:
    """Per problem, the share of its k-blocks whose best attempt is right, ranked by the verifier's scores or by the
    model's own mean log-probability per token."""
    out = []
    for i, pool in enumerate(pools):
        if by == "verifier":
            if scores is None:
                raise LlmlabError("best-of-N by the verifier needs its scores")
            rank = scores[i]
        elif by == "likelihood":
            rank = [a.logprob / max(1, a.tokens) for a in pool]
        else:
            raise LlmlabError(f"best-of-N by {by!r}: choose verifier or likelihood")
        hits = []
        for block in _blocks(len(pool), k):
            picked = best_of(list(block), [rank[j] for j in block])
            hits.append(pool[picked].right)
        out.append(sum(hits) / len(hits))
    return out


def coverage_at(pools: list[list], k: int) -> list[float]:
    """Per problem, the unbiased pass@k over its N attempts."""
    return [pass_at_k(len(pool), sum(a.right for a in pool), k) for pool in pools]


def fit_coverage(ks: list[int], coverage: list[float]) -> dict:
    """Fit -log(coverage) = a * k^b (an exponentiated power law) by least squares on log(-log c) = log a + b log k;
    points with coverage 0 or 1 carry no information on that scale and are left out. R^2 on the fitted scale."""
    pts = [(k, c) for k, c in zip(ks, coverage) if 0 < c < 1]
    if len(pts) < 3:
        raise LlmlabError(f"fitting coverage needs >= 3 values of k with 0 < coverage < 1, got {len(pts)}")
    x = np.log([k for k, _ in pts])
    y = np.log([-math.log(c) for _, c in pts])
    b, log_a = np.polyfit(x, y, 1)
    residual = y - (log_a + b * x)
    r2 = 1 - float((residual**2).sum()) / float(((y - y.mean()) ** 2).sum()) if len(pts) > 2 else float("nan")
    return {"a": float(math.exp(log_a)), "b": float(b), "r2": r2, "points": len(pts)}
