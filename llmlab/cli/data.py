"""`llmlab data prepare|stats|check`: build a run's dataset (cleaned store, tokenizer, token shards), describe it,
and check fine-tuning files before training on them.

    llmlab data prepare                                  # the built-in corpus into runs/default/
    llmlab data prepare --run_dir runs/mine --data.sources '[txt:notes/, jsonl:chats.jsonl#body]'
    llmlab data stats --run_dir runs/mine
    llmlab data check alpaca_data.json hh.jsonl --model runs/mine/base
"""

from __future__ import annotations

from pathlib import Path

from llmlab.data.prepare import PrepareConfig
from llmlab.layout import DEFAULT_RUN_DIR, RunDir


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

    stats, png = write_stats(run_dir)
    print(format_stats(stats))
    print(f"\nsaved {RunDir(run_dir).data / 'stats.json'} and {png}")


def check(files: list[str], model: str | None = None, run_dir: Path = DEFAULT_RUN_DIR) -> None:
    """Check SFT or preference files without training: the format and record shapes detected, records usable and
    skipped (with file:line reasons), and token lengths against the model's context.

    `llmlab data check FILE [FILE ...] [--model M]` (or the files as one list: '[a.json, b.jsonl]').

    Args:
        files: the files to check: JSONL, a JSON array, Parquet (a file or folder), a folder saved by `datasets`, or
            hf:NAME[@SPLIT]; SFT or preference records, told apart by their fields.
        model: the model whose tokenizer and context to measure with (a model folder, a Hugging Face folder, a GGUF
            file, hf:org/name or smollm2); None: <run_dir>/base.
        run_dir: the run whose base model to use when --model is not given.
    """
    from llmlab.errors import LlmlabError
    from llmlab.model.loading import load_model
    from llmlab.tokenizer.conversations import check_file

    spec = model or RunDir(run_dir).model_of("pretrain")
    if model is None and not (Path(spec) / "model.json").exists():
        raise LlmlabError(f"{spec}: no base model to measure with; pass --model (a model folder, smollm2, ...) or the "
                          f"--run_dir of a pre-trained run")
    loaded, tok, _ = load_model(spec)
    context = loaded.cfg.seq_len
    unusable = []
    for path in files:
        try:
            summary = check_file(path, tok, context)
        except LlmlabError as e:
            print(f"{path}: UNUSABLE: {e}")
            unusable.append(path)
            continue
        shapes = ", ".join(f"{n:,} {shape}" for shape, n in summary["shapes"].items())
        skipped = sum(summary["skipped"].values())
        t = summary["tokens"]
        print(f"{path}: {summary['format']}, {summary['kind']} records: {summary['kept']:,} usable ({shapes}), "
              f"{skipped:,} skipped" + (f" {summary['skipped']}" if skipped else ""))
        for problem in summary["problems"]:
            print(f"  skipped: {problem}")
        if skipped > len(summary["problems"]):
            print(f"  ... and {skipped - len(summary['problems']):,} more")
        print(f"  tokens per {'conversation' if summary['kind'] == 'SFT' else 'pair'}: min {t['min']:,}, median "
              f"{t['median']:,}, p95 {t['p95']:,}, max {t['max']:,} ({t['total']:,} in all); {t['over_context']:,} "
              f"longer than the model's context of {context:,} tokens"
              + (" (SFT cuts them by default, DPO skips them)" if t["over_context"] else ""))
    if unusable:
        raise LlmlabError(f"{len(unusable)} of {len(files)} files have no usable records: {', '.join(unusable)}")
