"""The default fine-tuning data of a run: the generated mixture (llmlab.data.assistant) written once under
<run_dir>/assistant_data/ as sft_{train,val}.jsonl and prefs_{train,val}.jsonl, with every text NFKC-normalised
like the pre-training text, so fine-tuning sees the same characters the tokenizer and base model saw.
"""

from __future__ import annotations

from pathlib import Path

from llmlab.data.assistant import build_default_mixture, write_mixture
from llmlab.data.clean import normalize_text
from llmlab.layout import RunDir


def default_data_files(run_dir: Path) -> dict[str, Path]:
    """{"sft_train", "sft_val", "prefs_train", "prefs_val"} -> path; generates the files on first use. Under torchrun
    one process must write them first (llmlab.train.distributed.main_first)."""
    folder = RunDir(run_dir).assistant_data
    if not (folder / "counts.json").exists():
        mix = build_default_mixture()
        for part in (*mix["sft"].values(), *mix["prefs"].values()):
            for row in part:
                for message in row.get("messages", []) + row.get("prompt", []):
                    message["content"] = normalize_text(message["content"])
                for answer in ("chosen", "rejected"):
                    if answer in row:
                        row[answer] = normalize_text(row[answer])
        write_mixture(mix, folder)
    return {name: folder / f"{name}.jsonl" for name in ("sft_train", "sft_val", "prefs_train", "prefs_val")}
