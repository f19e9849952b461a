"""The cleaned-document store of a run: `<run_dir>/data/clean/docs_NNNNN.jsonl`.

`llmlab data prepare` writes it (one JSON object a line: id, source, split, text) after cleaning and deduplication;
the tokenizer trains on its train split and the tokenize step reads it back. Readers stream, so memory stays bounded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from llmlab.errors import LlmlabError
from llmlab.layout import RunDir


def iter_clean_docs(run_dir: Path, split: str | None = None) -> Iterator[dict]:
    """Yield cleaned, deduplicated documents ({"id", "source", "split", "text"}) in corpus order, optionally one split."""
    folder = RunDir(run_dir).clean
    files = sorted(folder.glob("docs_*.jsonl"))
    if not files or not (folder / "done.json").exists():
        raise LlmlabError(f"{folder}: no cleaned documents; run `llmlab data prepare --run_dir {run_dir}` first")
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                if split is None or doc["split"] == split:
                    yield doc


def iter_clean_texts(run_dir: Path, split: str = "train", max_chars: int | None = None) -> Iterator[str]:
    """Texts of one split of the store, stopping once `max_chars` characters were yielded (None: all)."""
    total = 0
    for doc in iter_clean_docs(run_dir, split):
        if max_chars is not None and total >= max_chars:
            return
        total += len(doc["text"])
        yield doc["text"]
