"""Document cleaning: normalisation and filters, with a count of what each step changed or removed.

Steps, in order (thresholds are `CleanConfig` fields, so every run records the ones it used):
    normalize   Unicode normalisation, NFKC by default: folds compatibility forms (no-break space -> space,
                ligatures, full-width letters) so the tokenizer does not spend vocabulary on look-alikes. The same
                normalisation must be applied to text at inference (`normalize_text`).
    control     control characters removed (category Cc except tab and newline; CR and CRLF become LF)
    min_chars   documents shorter than `min_chars` characters after stripping: nothing to learn from
    max_chars   documents longer than `max_chars`: almost always dumps, logs or encoded blobs
    min_words   fewer than `min_words` whitespace-separated words: titles, headings, lone numbers
    alpha       fewer than `min_alpha_fraction` of the non-space characters are letters: tables, code dumps, junk
    word_length mean word length above `max_mean_word_length`: base64, URLs, hashes, run-together text
Exact and near-duplicate removal come after (see prepare.py and minhash.py).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

STEPS = ("normalize", "control", "min_chars", "max_chars", "min_words", "alpha", "word_length")


@dataclass
class CleanConfig:
    """Cleaning thresholds.

    Args:
        normalization: Unicode normal form applied first: NFKC, NFC or none.
        min_chars: drop documents shorter than this (characters).
        max_chars: drop documents longer than this (characters).
        min_words: drop documents with fewer whitespace-separated words.
        min_alpha_fraction: drop documents where letters are a smaller share of the non-space characters.
        max_mean_word_length: drop documents whose mean word length is above this.
        near_dup_threshold: estimated Jaccard similarity (word 5-grams) above which a later document is dropped
            as a near-duplicate of an earlier one; 1.0 turns near-duplicate removal off.
    """

    normalization: str = "NFKC"
    min_chars: int = 32
    max_chars: int = 1_000_000
    min_words: int = 5
    min_alpha_fraction: float = 0.6
    max_mean_word_length: float = 15.0
    near_dup_threshold: float = 0.8

    def __post_init__(self) -> None:
        if self.normalization not in ("NFKC", "NFC", "none"):
            from llmlab.errors import LlmlabError

            raise LlmlabError(f"clean.normalization: {self.normalization!r} is not one of NFKC, NFC, none")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # Cc minus \t (09) and \n (0a); \r handled first


def normalize_text(text: str, normalization: str = "NFKC") -> str:
    return text if normalization == "none" else unicodedata.normalize(normalization, text)


def clean_text(text: str, cfg: CleanConfig) -> tuple[str | None, str | None, list[str]]:
    """Clean one document: (cleaned text or None, the filter that removed it or None, the steps that changed it)."""
    changed = []
    normalized = normalize_text(text, cfg.normalization)
    if normalized != text:
        changed.append("normalize")
    text = normalized
    stripped = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    if stripped != text:
        changed.append("control")
    text = stripped.strip()
    if len(text) < cfg.min_chars:
        return None, "min_chars", changed
    if len(text) > cfg.max_chars:
        return None, "max_chars", changed
    words = text.split()
    if len(words) < cfg.min_words:
        return None, "min_words", changed
    non_space = sum(len(w) for w in words)
    letters = sum(ch.isalpha() for ch in text)
    if letters < cfg.min_alpha_fraction * non_space:
        return None, "alpha", changed
    if non_space / len(words) > cfg.max_mean_word_length:
        return None, "word_length", changed
    return text, None, changed
