"""Near-duplicate detection with MinHash signatures and LSH banding, in numpy with bounded memory.

A document's shingles are its word 5-grams; its signature holds, for each of NUM_PERM hash functions, the
minimum hash over its shingles. The share of equal signature entries estimates the Jaccard similarity of two
shingle sets. LSH cuts the signature into BANDS bands of ROWS rows: documents that agree on a whole band are
candidates, and a candidate is dropped when its estimated similarity to the first document of that band bucket is
at least the threshold. With 16 bands of 8 rows, a pair at Jaccard 0.8 becomes a candidate with probability
1 - (1 - 0.8**8)**16 = 0.94, a pair at 0.5 with 0.06 (then rejected by the similarity check).

Why not an in-memory LSH index (e.g. datasketch's)? Its dicts cost ~100 bytes per document and band, gigabytes
for a large corpus. Here signatures go to a file as they are made, and buckets are found afterwards by sorting
one band column at a time: O(N) memory in 8-byte keys, so a corpus larger than RAM still works.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np

NUM_PERM = 128
BANDS, ROWS = 16, 8
SHINGLE_WORDS = 5
_WORD = re.compile(r"\w+")
_rng = np.random.default_rng(20240229)  # fixed: signatures must be comparable across runs and processes
_A = (_rng.integers(1, 2**63, NUM_PERM, dtype=np.uint64) << np.uint64(1)) | np.uint64(1)  # odd multipliers
_B = _rng.integers(0, 2**63, NUM_PERM, dtype=np.uint64)
_SHINGLE_MUL = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio constant: mixes word hashes into a shingle hash
_CHUNK = 8192  # shingles per block: bounds the (shingles x NUM_PERM) temporary to 8 MB


def signature(text: str) -> np.ndarray:
    """(NUM_PERM,) uint32 MinHash signature of the word 5-gram set of `text` (lower-cased)."""
    words = _WORD.findall(text.lower())
    h = np.fromiter((zlib.crc32(w.encode("utf-8")) for w in words), dtype=np.uint64, count=len(words))
    if len(h) == 0:
        h = np.zeros(1, dtype=np.uint64)
    n = max(1, len(h) - SHINGLE_WORDS + 1)
    shingles = np.zeros(n, dtype=np.uint64)
    for k in range(min(SHINGLE_WORDS, len(h))):  # polynomial rolling combination, wrapping mod 2**64
        shingles = shingles * _SHINGLE_MUL + h[k : k + n]
    sig = np.full(NUM_PERM, np.iinfo(np.uint64).max, dtype=np.uint64)
    for start in range(0, n, _CHUNK):
        block = shingles[start : start + _CHUNK, None]  # (chunk, 1)
        hashed = (block * _A[None, :] + _B[None, :]) >> np.uint64(32)  # multiply-shift hashing: (chunk, NUM_PERM)
        np.minimum(sig, hashed.min(axis=0), out=sig)
    return sig.astype(np.uint32)


def near_duplicates(signatures: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask over documents (rows of an (N, NUM_PERM) uint32 array, may be a memmap): True = drop.

    A document is dropped when it shares an LSH band with an earlier document and their estimated Jaccard
    similarity is >= threshold; the earliest document of each group is kept.
    """
    n = len(signatures)
    drop = np.zeros(n, dtype=bool)
    if n < 2 or threshold > 1.0:
        return drop
    powers = np.uint64(0x100000001B3) ** np.arange(ROWS, dtype=np.uint64)  # FNV prime powers, wrapping
    for band in range(BANDS):
        keys = np.empty(n, dtype=np.uint64)
        for start in range(0, n, 1 << 16):  # read the memmap in slices
            rows = np.asarray(signatures[start : start + (1 << 16), band * ROWS : (band + 1) * ROWS], dtype=np.uint64)
            keys[start : start + len(rows)] = (rows * powers).sum(axis=1)
        order = np.argsort(keys, kind="stable")  # equal keys stay in document order: the first is the earliest
        sorted_keys = keys[order]
        new_group = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
        first_of_group = order[np.maximum.accumulate(np.where(new_group, np.arange(n), 0))]
        candidates = np.flatnonzero(~new_group)
        if len(candidates) == 0:
            continue
        docs, reps = order[candidates], first_of_group[candidates]
        for start in range(0, len(docs), 1 << 14):
            d, r = docs[start : start + (1 << 14)], reps[start : start + (1 << 14)]
            sim = (np.asarray(signatures[d]) == np.asarray(signatures[r])).mean(axis=1)  # estimated Jaccard
            drop[d[sim >= threshold]] = True
    return drop


def write_signatures(path: Path, signatures: list[np.ndarray]) -> None:
    """Append signatures to a raw (N, NUM_PERM) uint32 file."""
    if signatures:
        with open(path, "ab") as f:
            f.write(np.stack(signatures).astype(np.uint32).tobytes())


def read_signatures(path: Path) -> np.ndarray:
    if not path.exists() or path.stat().st_size == 0:
        return np.zeros((0, NUM_PERM), dtype=np.uint32)
    return np.memmap(path, dtype=np.uint32, mode="r").reshape(-1, NUM_PERM)
