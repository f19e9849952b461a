"""Scores and their uncertainty, shared by every evaluation.

    wilson(45, 50)                     # (0.786, 0.957): 95% Wilson interval of a rate (good at 0/n and n/n too)
    rate_ci([True, False, True])       # (rate, [lo, hi])
    mean_ci([0.2, 0.4, 0.9], (0, 1))   # (mean, [lo, hi]): normal interval, mean +- 1.96 standard errors, clipped
    ratio_bootstrap_ci(bits, bytes_)   # sum(bits) / sum(bytes_) and a percentile bootstrap over the units
    token_f1("Paris is big", "Paris")  # SQuAD-style bag-of-words F1
    token_f1("It is in Paris", "Paris is in France", ignore=STOPWORDS | {"france"})   # F1 over content words only

Run the checks: `.venv/bin/pytest tests/test_eval_scoring.py`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

import numpy as np

Z95 = 1.96
BOOTSTRAP_RESAMPLES = 1000  # percentile error of ~0.5% of the interval width: plenty for two printed decimals
_WORD = re.compile(r"\w+")
# Function words: an answer earns no credit for them (a model that only writes "the ... of the ..." matches any
# reference on these). Short and fixed on purpose: the list only has to remove what every English answer shares.
STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or but as is are was were be been it its this that these those "
    "he she they his her their which who what also one s".split()
)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - half) / (1 + z * z / n)), min(1.0, (centre + half) / (1 + z * z / n))


def rate_ci(flags: Sequence[bool]) -> tuple[float, list[float]]:
    """(share of True, its 95% Wilson interval); (0, [0, 1]) for no flags."""
    hits = sum(bool(f) for f in flags)
    return hits / max(1, len(flags)), list(wilson(hits, len(flags)))


def mean_ci(values: Sequence[float],
            bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, list[float] | None]:
    """(mean, 95% normal interval of the mean, clipped to `bounds`, e.g. (0, 1) for F1); None below two values."""
    if not values:
        return 0.0, None
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, None
    half = Z95 * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean, [max(bounds[0], mean - half), min(bounds[1], mean + half)]


def ratio_bootstrap_ci(numerators: Sequence[float], denominators: Sequence[float], seed: int = 0,
                       resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, list[float] | None]:
    """sum(numerators) / sum(denominators) and its 95% percentile bootstrap interval, resampling the units (e.g.
    documents: bits and bytes per document) with replacement; the interval is None below two units."""
    num, den = np.asarray(numerators, dtype=np.float64), np.asarray(denominators, dtype=np.float64)
    value = float(num.sum() / den.sum())
    if len(num) < 2:
        return value, None
    picks = np.random.default_rng(seed).integers(0, len(num), size=(resamples, len(num)))  # (R, N)
    ratios = num[picks].sum(axis=1) / den[picks].sum(axis=1)  # (R,)
    return value, [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def token_f1(prediction: str, reference: str, ignore: frozenset[str] | set[str] = frozenset()) -> float:
    """Bag-of-words F1 of prediction vs reference (lower-cased word tokens), leaving out the words in `ignore`."""
    pred = [w for w in words(prediction) if w not in ignore]
    ref = [w for w in words(reference) if w not in ignore]
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)
