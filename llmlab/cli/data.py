"""`llmlab data prepare|stats`: build a run's dataset (cleaned store, tokenizer, token shards) and describe it.

    llmlab data prepare                                  # the built-in corpus into runs/default/
    llmlab data prepare --run_dir runs/mine --data.sources '[txt:notes/, jsonl:chats.jsonl#body]'
    llmlab data stats --run_dir runs/mine
"""

from __future__ import annotations

from pathlib import Path

from llmlab.data.prepare import PrepareConfig
from llmlab.layout import DEFAULT_RUN_DIR


def prepare(
    run_dir: Path = DEFAULT_RUN_DIR,
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
    from llmlab.pipeline.prepare import prepare as run_prepare

    run_prepare(run_dir, data, vocab_size, tokenizer_max_chars)


def stats(run_dir: Path = DEFAULT_RUN_DIR) -> None:
    """Print the prepared dataset's statistics and save data/stats.json and data/doc_lengths.png.

    Args:
        run_dir: the run directory whose data to describe.
    """
    from llmlab.data.stats import format_stats, write_stats
    from llmlab.layout import RunDir

    stats, png = write_stats(run_dir)
    print(format_stats(stats))
    print(f"\nsaved {RunDir(run_dir).data / 'stats.json'} and {png}")
