"""Test-time strategies' arithmetic: turning k sampled answers into one (majority vote, best-of-N by a score),
allocating samples by difficulty, and measuring coverage (pass@k with the unbiased estimator).

    pass_at_k(n=64, c=5, k=8)                       # chance that at least one of 8 of the 64 samples is right
    majority_vote(["12", "15", "12", None])         # ("12", 2): None (no final answer) does not vote
    best_of(["12", "15"], scores=[-3.1, -0.4])      # "15"
    adaptive_best_of(scores, first=4, most=64, confident=2.0)   # how many samples a problem gets
"""

from __future__ import annotations

from collections import Counter

from llmlab.errors import LlmlabError


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n - c, k) / C(n, k): the chance that k of n samples drawn without replacement include one of the c right
    ones (Chen et al. 2021), as a running product (no huge binomials)."""
    if not 0 <= c <= n:
        raise LlmlabError(f"pass@k: {c} right out of {n} samples is impossible")
    if not 1 <= k <= n:
        raise LlmlabError(f"pass@{k} needs at least k samples per problem and k >= 1; {n} were drawn")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def majority_vote(answers: list[str | None]) -> tuple[str | None, int]:
    """(the most frequent answer, its votes); answers that are None (no final answer) do not vote. A tie goes to the
    answer that appeared first, so the vote is a pure function of the samples' order. (None, 0) when nobody voted."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return None, 0
    top = max(votes.values())
    winner = next(a for a in answers if a is not None and votes[a] == top)
    return winner, top


def best_of(answers: list[str | None], scores: list[float]) -> str | None:
    """The answer with the highest score (a verifier's, or the model's own log-likelihood); the first on ties."""
    if len(answers) != len(scores):
        raise LlmlabError(f"best-of-N: {len(answers)} answers but {len(scores)} scores")
    if not answers:
        return None
    return answers[max(range(len(answers)), key=lambda i: (scores[i], -i))]


def adaptive_best_of(scores: list[float], first: int, most: int, confident: float) -> int:
    """How many of a problem's samples (drawn in order, their verifier log-odds in `scores`) difficulty-adaptive
    best-of-N uses: `first` to start, then doubling until the best score so far reaches `confident` (log-odds) or
    `most` samples are used. Easy problems stop early; the budget goes where the verifier is unsure."""
    if not 1 <= first <= most <= len(scores):
        raise LlmlabError(f"adaptive best-of-N needs 1 <= first ({first}) <= most ({most}) <= samples "
                          f"({len(scores)})")
    used = first
    while used < most and max(scores[:used]) < confident:
        used = min(most, used * 2)
    return used
