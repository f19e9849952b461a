"""Helpers shared by the pre-training benchmarks: run `llmlab` commands and read their metrics.

Each benchmark prepares the default dataset once and gives every training run a fresh folder that links to the
prepared tokenizer and data, so all runs see the same tokens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def llmlab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "llmlab", *args], check=True)


def prepared_data(name: str = "data-run") -> Path:
    run = OUT / name
    llmlab("data", "prepare", "--run_dir", str(run))
    return run


def linked_run(data_run: Path, folder: Path) -> Path:
    """A fresh run folder sharing the prepared tokenizer and data."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for part in ("tokenizer", "data"):
        os.symlink(data_run.resolve() / part, folder / part)
    return folder


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "pretrain" / "metrics.jsonl").read_text().splitlines()]


def summarise(run: Path) -> dict:
    """Median tokens/s and MFU (first fifth of the steps skipped: warm-up), training time, the bpb curve."""
    rows = metrics(run)
    train = [r for r in rows if "tok_s" in r]
    evals = [(r["train_time"], r["val_bpb"]) for r in rows if "val_bpb" in r]
    steady = train[len(train) // 5 :] or train
    return {
        "tok_s": sorted(r["tok_s"] for r in steady)[len(steady) // 2],
        "mfu": sorted(r["mfu"] for r in steady)[len(steady) // 2],
        "train_seconds": train[-1]["train_time"],
        "final_bpb": evals[-1][1],
        "curve": evals,
        "zip_view": json.loads((run / "pretrain" / "zip_view.json").read_text()),
    }
