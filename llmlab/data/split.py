"""The deterministic train/val split, and the Wikipedia titles reserved for the knowledge test.

A document's split is a hash of its id alone, so it never changes between runs, machines, source orders or
corpus sizes, and held-out text is never trained on. Among *train* Wikipedia titles a second, independent hash
reserves a fraction whose Q&A are never used for fine-tuning: the assistant stage tests on them whether it can
extract what pre-training compressed. Val titles stay fully unseen (neither pre-trained on nor fine-tuned on).
"""

from __future__ import annotations

import hashlib

VAL_FRACTION = 0.05  # ~500 Wikipedia articles (~245 KB) held out: enough bytes for a stable bits-per-byte
RESERVED_FRACTION = 0.05  # ~475 train titles kept out of SFT for the knowledge-extraction test


def _unit_hash(salt: str, key: str) -> float:
    """A uniform number in [0, 1) from (salt, key), stable everywhere (unlike Python's salted hash())."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def split_of(doc_id: str, val_fraction: float = VAL_FRACTION) -> str:
    """'val' for a fixed `val_fraction` of document ids, else 'train'."""
    return "val" if _unit_hash("llmlab-split-v1", doc_id) < val_fraction else "train"


def is_reserved_title(title: str, val_fraction: float = VAL_FRACTION, reserved_fraction: float = RESERVED_FRACTION) -> bool:
    """True for the train Wikipedia titles whose Q&A must never be used for fine-tuning."""
    return split_of(f"wiki/{title}", val_fraction) == "train" and _unit_hash("llmlab-reserved-v1", title) < reserved_fraction
