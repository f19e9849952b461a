"""Test-time strategies' arithmetic: the unbiased pass@k against brute force, majority vote ties, best-of-N."""

from __future__ import annotations

import itertools
import math

import pytest

from llmlab.engine.strategies import adaptive_best_of, best_of, majority_vote, pass_at_k
from llmlab.errors import LlmlabError


@pytest.mark.parametrize("n, c", [(1, 0), (1, 1), (5, 2), (8, 3), (10, 10), (12, 1)])
def test_pass_at_k_equals_brute_force_over_all_subsets(n, c):
    right = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(range(n), k))
        brute = sum(any(right[i] for i in s) for s in subsets) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)
        assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_pass_at_k_is_stable_for_many_samples_and_refuses_too_few():
    assert pass_at_k(1024, 3, 1) == pytest.approx(3 / 1024)
    assert 0 < pass_at_k(10_000, 1, 5000) <= 1
    with pytest.raises(LlmlabError, match="at least k samples"):
        pass_at_k(8, 2, 16)
    with pytest.raises(LlmlabError, match="impossible"):
        pass_at_k(8, 9, 1)


def test_majority_vote_counts_answers_and_breaks_ties_by_first_appearance():
    assert majority_vote(["12", "15", "12", None]) == ("12", 2)
    assert majority_vote(["15", "12", "12", "15"]) == ("15", 2)  # tie: 15 came first
    assert majority_vote(["12", "15", "15", "12"]) == ("12", 2)
    assert majority_vote([None, None, "7"]) == ("7", 1) and majority_vote([None]) == (None, 0) == majority_vote([])


def test_best_of_takes_the_highest_score_first_on_ties():
    assert best_of(["12", "15", "9"], [-3.1, -0.4, -2.0]) == "15"
    assert best_of(["12", "15"], [1.0, 1.0]) == "12" and best_of([], []) is None
    with pytest.raises(LlmlabError, match="2 answers but 1 scores"):
        best_of(["1", "2"], [0.5])


def test_adaptive_allocation_stops_where_the_verifier_is_confident():
    assert adaptive_best_of([3.0] + [0.0] * 63, first=4, most=64, confident=2.0) == 4  # sure at once
    assert adaptive_best_of([0.0] * 10 + [2.5] + [0.0] * 53, first=4, most=64, confident=2.0) == 16  # 4, 8, 16
    assert adaptive_best_of([0.0] * 64, first=4, most=64, confident=2.0) == 64  # never sure: all of them
    assert adaptive_best_of([0.0] * 64, first=3, most=40, confident=2.0) == 40  # 3, 6, ..., 24, then capped
    with pytest.raises(LlmlabError, match="first"):
        adaptive_best_of([0.0] * 8, first=4, most=16, confident=1.0)
