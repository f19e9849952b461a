"""A run's dataset, stage by stage: sources -> cleaned, deduplicated store -> the run's tokenizer -> token shards.

    from llmlab.pipeline.prepare import prepare
    prepare("runs/x", PrepareConfig(), vocab_size=4096)     # what `llmlab data prepare` runs
    train_run_tokenizer("runs/x", vocab_size=4096)          # `llmlab tokenizer train`
    tokenizer_sweep("runs/x", [1024, 2048, 4096, 8192])     # `llmlab tokenizer stats`

Each stage is skipped when its outputs exist with the same settings, so re-running is a no-op. The steps themselves
live below: cleaning, dedup and sharding in llmlab.data, BPE training in llmlab.tokenizer; this module chains them.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path

from llmlab.data.prepare import PrepareConfig, clean_stage, tokenize_stage
from llmlab.data.stats import format_stats, write_stats
from llmlab.data.store import iter_clean_texts
from llmlab.errors import LlmlabError
from llmlab.files import atomic_path, atomic_write_json, file_sha256, fingerprint
from llmlab.layout import RunDir
from llmlab.tokenizer.bpe import (
    DEFAULT_VOCAB_SIZE,
    Tokenizer,
    saved_fingerprint,
    sweep_vocab_sizes,
    train_tokenizer,
    training_settings,
)

log = logging.getLogger(__name__)


def prepare(run_dir: Path, data: PrepareConfig, vocab_size: int = DEFAULT_VOCAB_SIZE,
            tokenizer_max_chars: int | None = 50_000_000) -> None:
    """Clean and deduplicate the sources, train the run's tokenizer if it has none, write the token shards, and
    print the dataset's statistics."""
    start = time.time()
    run = RunDir(run_dir)
    clean_stage(run_dir, data)
    if not (run.tokenizer / "tokenizer.json").exists():
        train_run_tokenizer(run_dir, vocab_size, tokenizer_max_chars)
    tok = Tokenizer.load(run.tokenizer)
    info = {"sha256": tok.sha256, "vocab_size": tok.vocab_size, "bos_id": tok.bos_id, "folder": str(run.tokenizer)}
    tokenize_stage(run_dir, data, partial(Tokenizer.load, run.tokenizer), info)
    stats, png = write_stats(run_dir)
    print(format_stats(stats))
    print(f"\ndata ready in {time.time() - start:.1f} s: {run.data} (histogram: {png})")


def train_run_tokenizer(run_dir: Path, vocab_size: int = DEFAULT_VOCAB_SIZE, max_chars: int | None = None,
                        force: bool = False) -> None:
    """Train <run_dir>/tokenizer/ on the run's cleaned train texts, unless one with the same settings and data is
    already there (or force)."""
    run = RunDir(run_dir)
    done = run.clean_done
    if not done.exists():
        raise LlmlabError(f"{done.parent}: no cleaned documents; run `llmlab data prepare --run_dir {run_dir}` first")
    record = {"max_chars": max_chars, "data_done_sha256": file_sha256(done)}
    wanted = fingerprint(training_settings(vocab_size, **record))
    if not force and saved_fingerprint(run.tokenizer) == wanted:
        print(f"{run.tokenizer}: already trained with the same settings and data (fingerprint {wanted}); "
              f"use --force true to retrain")
        return
    log.info("training a %d-token BPE tokenizer on %s", vocab_size, done.parent)
    tok = train_tokenizer(iter_clean_texts(run_dir, "train", max_chars), vocab_size, run.tokenizer, record=record)
    print(f"{run.tokenizer}: {tok.vocab_size} tokens, sha256 {tok.sha256[:16]}")


def tokenizer_sweep(run_dir: Path, vocab_sizes: list[int], max_chars: int | None = None) -> Path:
    """Train a tokenizer of each size on the run's train texts and measure bytes/token on its val texts; writes
    <run_dir>/tokenizer/stats.json and bytes_per_token.png (the run's own tokenizer is left alone) and returns the
    plot's path."""
    run = RunDir(run_dir)
    eval_texts = list(iter_clean_texts(run_dir, "val", max_chars))
    if not eval_texts:
        raise LlmlabError(f"{run.clean}: no val texts to measure on")
    log.info("training %d tokenizers (vocab sizes %s)", len(vocab_sizes), vocab_sizes)
    rows = sweep_vocab_sizes(lambda: iter_clean_texts(run_dir, "train", max_chars), eval_texts, vocab_sizes,
                             run.tokenizer / "stats")
    print(f"{'vocab_size':>10}  {'bytes/token':>11}  {'train_s':>7}")
    for row in rows:
        print(f"{row['vocab_size']:>10}  {row['bytes_per_token']:>11.3f}  {row['train_seconds']:>7.2f}")
    atomic_write_json(run.tokenizer / "stats.json", {
        "eval_split": "val",
        "eval_texts": len(eval_texts),
        "eval_bytes": sum(len(t.encode("utf-8")) for t in eval_texts),
        "max_chars": max_chars,
        "rows": rows,
    })
    plot_path = run.tokenizer / "bytes_per_token.png"
    plot_bytes_per_token(rows, plot_path)
    return plot_path


def plot_bytes_per_token(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["vocab_size"] for r in rows], [r["bytes_per_token"] for r in rows], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("vocabulary size")
    ax.set_ylabel("bytes per token (val)")
    ax.set_title("Tokenizer compression")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
