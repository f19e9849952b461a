"""The default fine-tuning data of a run: the generated mixture (llmlab.data.assistant) written once under
<run_dir>/assistant_data/ as sft_{train,val}.jsonl and prefs_{train,val}.jsonl, with every text NFKC-normalised
like the pre-training text, so fine-tuning sees the same characters the tokenizer and base model saw.
"""

from __future__ import annotations

from pathlib import Path

from llmlab.data.assistant import build_default_mixture, write_mixture
from llmlab.data.clean import normalize_text
from llmlab.train.distributed import Dist, barrier


def default_data_files(run_dir: Path, d: Dist | None = None) -> dict[str, Path]:
    """{"sft_train", "sft_val", "prefs_train", "prefs_val"} -> path; generates the files on first use (under
    torchrun, the main process writes them while the others wait)."""
    if d is not None and not d.is_main:
        barrier(d)
        return default_data_files(run_dir)
    folder = Path(run_dir) / "assistant_data"
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
    if d is not None:
        barrier(d)
    return {name: folder / f"{name}.jsonl" for name in ("sft_train", "sft_val", "prefs_train", "prefs_val")}
