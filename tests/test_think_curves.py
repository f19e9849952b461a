"""The System 2 lab's curves from pools of attempts: block-averaged strategies, coverage, and the coverage fit."""

from __future__ import annotations

import math

import pytest

from llmlab.engine.thinking import Attempt
from llmlab.errors import LlmlabError
from llmlab.labs.think.curves import best_of_at, coverage_at, fit_coverage, majority_at


def pool(answers: str, gold: str = "1") -> list[Attempt]:
    return [Attempt(f"#### {a}", a, a == gold, 4, -1.0 * (j + 1), 10.0) for j, a in enumerate(answers)]


def test_majority_is_averaged_over_disjoint_blocks():
    pools = [pool("11221122")]  # blocks of 4: "1122" -> 1 (first on the tie), twice; blocks of 2: 11, 22, 11, 22
    right = lambda i, answer: answer == "1"  # noqa: E731
    assert majority_at(pools, 4, right) == [1.0] and majority_at(pools, 2, right) == [0.5]
    assert majority_at(pools, 1, right) == [0.5] and majority_at(pools, 8, right) == [1.0]
    with pytest.raises(LlmlabError, match="k=16 needs at least k samples"):
        majority_at(pools, 16, right)


def test_best_of_ranks_by_the_verifier_or_the_likelihood():
    p = pool("2121")  # log-probs -1, -2, -3, -4 at 4 tokens each: likelihood prefers the earlier ones
    assert best_of_at([p], 2, by="likelihood") == [0.0]  # blocks "21", "21": the first (wrong) wins both
    assert best_of_at([p], 2, by="verifier", scores=[[0.0, 5.0, 0.0, 5.0]]) == [1.0]
    with pytest.raises(LlmlabError, match="needs its scores"):
        best_of_at([p], 2, by="verifier")


def test_coverage_fit_recovers_an_exponentiated_power_law():
    a, b = 2.0, -0.4
    ks = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    fit = fit_coverage(ks, [math.exp(-a * k**b) for k in ks])
    assert fit["a"] == pytest.approx(a) and fit["b"] == pytest.approx(b) and fit["r2"] == pytest.approx(1.0)
    assert coverage_at([pool("2212")], 2) == [pytest.approx(0.5)]
    with pytest.raises(LlmlabError, match=">= 3 values"):
        fit_coverage([1, 2], [0.5, 0.6])
