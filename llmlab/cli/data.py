"""`llmlab data prepare|stats`: build a run's dataset (cleaned store, tokenizer, token shards) and describe it.

    llmlab data prepare                                  # the built-in corpus into runs/default/
    llmlab data prepare --run_dir runs/mine --data.sources '[txt:notes/, jsonl:chats.jsonl#body]'
    llmlab data stats --run_dir runs/mine
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path

from llmlab.data.prepare import PrepareConfig

log = logging.getLogger(__name__)


def prepare(
    run_dir: Path = Path("runs/default"),
    data: PrepareConfig = PrepareConfig(),
    vocab_size: int = 4096,
    tokenizer_max_chars: int = 50_000_000,
) -> None:
    """Clean and deduplicate the sources, train the run's tokenizer if it has none, and write token shards.

    Each stage is skipped when its outputs exist with the same settings, so re-running is a no-op.

    Args:
        run_dir: the run directory; outputs go to <run_dir>/data and <run_dir>/tokenizer.
        data: sources, cleaning thresholds, split and sharding settings.
        vocab_size: vocabulary size of the tokenizer trained when <run_dir>/tokenizer does not exist yet.
        tokenizer_max_chars: train the tokenizer on at most this many characters of training text.
    """
    from llmlab.cli import tokenizer as tokenizer_cli
    from llmlab.data.prepare import clean_stage, tokenize_stage
    from llmlab.data.stats import format_stats, write_stats
    from llmlab.tokenizer.bpe import Tokenizer

    start = time.time()
    clean_stage(run_dir, data)
    tok_dir = Path(run_dir) / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        tokenizer_cli.train(run_dir=run_dir, vocab_size=vocab_size, max_chars=tokenizer_max_chars)
    tok = Tokenizer.load(tok_dir)
    info = {"sha256": tok.sha256, "vocab_size": tok.vocab_size, "bos_id": tok.bos_id, "folder": str(tok_dir)}
    tokenize_stage(run_dir, data, partial(Tokenizer.load, tok_dir), info)
    stats, png = write_stats(run_dir)
    print(format_stats(stats))
    print(f"\ndata ready in {time.time() - start:.1f} s: {Path(run_dir) / 'data'} (histogram: {png})")


def stats(run_dir: Path = Path("runs/default")) -> None:
    """Print the prepared dataset's statistics and save data/stats.json and data/doc_lengths.png.

    Args:
        run_dir: the run directory whose data to describe.
    """
    from llmlab.data.stats import format_stats, write_stats

    stats, png = write_stats(run_dir)
    print(format_stats(stats))
    print(f"\nsaved {Path(run_dir) / 'data' / 'stats.json'} and {png}")
