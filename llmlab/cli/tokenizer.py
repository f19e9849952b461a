"""`llmlab tokenizer train|encode|decode|stats`: the tokenizer of a run, in `<run_dir>/tokenizer/`.

    llmlab tokenizer train  --run_dir runs/demo --vocab_size 4096
    llmlab tokenizer encode --run_dir runs/demo --text "Hello world" --show_tokens true
    llmlab tokenizer decode --run_dir runs/demo --ids "[9906, 1917]"
    llmlab tokenizer stats  --run_dir runs/demo --vocab_sizes "[1024,2048,4096,8192]"

The tokenizer trains on the train split of the run's cleaned documents (`llmlab data prepare` makes them).
"""

from __future__ import annotations

import logging
from pathlib import Path

from llmlab.errors import LlmlabError
from llmlab.tokenizer.bpe import DEFAULT_VOCAB_SIZE

log = logging.getLogger(__name__)


def tokenizer_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "tokenizer"


def train(
    *, run_dir: Path, vocab_size: int = DEFAULT_VOCAB_SIZE, max_chars: int | None = None, force: bool = False
) -> None:
    """Train the run's byte-level BPE tokenizer on its cleaned train texts; writes <run_dir>/tokenizer/.

    Does nothing if a tokenizer with the same settings and data is already there.

    Args:
        run_dir: The run folder (holds data/clean/ from `llmlab data prepare`).
        vocab_size: Vocabulary size, the 20 special tokens and 256 bytes included.
        max_chars: Train on at most this many characters of text (None: all train texts).
        force: Retrain even if a tokenizer with the same settings exists.
    """
    from llmlab.data.store import clean_dir, iter_clean_texts
    from llmlab.files import file_sha256, fingerprint
    from llmlab.tokenizer.bpe import saved_fingerprint, train_tokenizer, training_settings

    done = clean_dir(run_dir) / "done.json"
    if not done.exists():
        raise LlmlabError(f"{done.parent}: no cleaned documents; run `llmlab data prepare --run_dir {run_dir}` first")
    record = {"max_chars": max_chars, "data_done_sha256": file_sha256(done)}
    wanted = fingerprint(training_settings(vocab_size, **record))
    out_dir = tokenizer_dir(run_dir)
    if not force and saved_fingerprint(out_dir) == wanted:
        print(f"{out_dir}: already trained with the same settings and data (fingerprint {wanted}); "
              f"use --force true to retrain")
        return
    log.info("training a %d-token BPE tokenizer on %s", vocab_size, done.parent)
    tok = train_tokenizer(iter_clean_texts(run_dir, "train", max_chars), vocab_size, out_dir, record=record)
    print(f"{out_dir}: {tok.vocab_size} tokens, sha256 {tok.sha256[:16]}")


def encode(
    *, run_dir: Path, text: str | None = None, file: Path | None = None, show_tokens: bool = False
) -> None:
    """Print the token ids of a text (no BOS; special-token strings in it stay plain text).

    Args:
        run_dir: The run folder whose tokenizer/ to use.
        text: The text to encode.
        file: Encode this UTF-8 file instead of --text.
        show_tokens: Print one token a line (id and the text it stands for) instead of a list of ids.
    """
    from llmlab.tokenizer.bpe import Tokenizer

    if (text is None) == (file is None):
        raise LlmlabError("give exactly one of --text and --file")
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise LlmlabError(f"{file}: cannot read it as UTF-8 text ({e})") from e
    tok = Tokenizer.load(tokenizer_dir(run_dir))
    ids = tok.encode(text)
    if show_tokens:
        for i in ids:
            # A token can be part of a multi-byte character: show its bytes then.
            piece = tok.decode([i])
            print(f"{i:>7}  {piece!r}" if "\ufffd" not in piece else f"{i:>7}  {tok.token_bytes(i)!r}")
    else:
        print(ids)
    log.info("%d characters, %d UTF-8 bytes -> %d tokens", len(text), len(text.encode("utf-8")), len(ids))


def decode(*, run_dir: Path, ids: list[int]) -> None:
    """Print the text of a list of token ids.

    Args:
        run_dir: The run folder whose tokenizer/ to use.
        ids: Token ids, e.g. "[9906, 1917]".
    """
    from llmlab.tokenizer.bpe import Tokenizer

    print(Tokenizer.load(tokenizer_dir(run_dir)).decode(ids))


def stats(*, run_dir: Path, vocab_sizes: list[int] | None = None, max_chars: int | None = None) -> None:
    """Compare vocabulary sizes: train a tokenizer for each on the train texts and measure bytes/token on the val texts.

    Writes <run_dir>/tokenizer/stats.json and <run_dir>/tokenizer/bytes_per_token.png; the run's own tokenizer is
    left alone.

    Args:
        run_dir: The run folder (holds data/clean/ from `llmlab data prepare`).
        vocab_sizes: The sizes to compare (None: [1024, 2048, 4096, 8192]).
        max_chars: Use at most this many characters of train text, and of val text (None: all).
    """
    from llmlab.data.store import clean_dir, iter_clean_texts
    from llmlab.files import atomic_write_json
    from llmlab.tokenizer.bpe import sweep_vocab_sizes

    sizes = vocab_sizes or [1024, 2048, 4096, 8192]
    eval_texts = list(iter_clean_texts(run_dir, "val", max_chars))
    if not eval_texts:
        raise LlmlabError(f"{clean_dir(run_dir)}: no val texts to measure on")
    out_dir = tokenizer_dir(run_dir)
    log.info("training %d tokenizers (vocab sizes %s)", len(sizes), sizes)
    rows = sweep_vocab_sizes(lambda: iter_clean_texts(run_dir, "train", max_chars), eval_texts, sizes,
                             out_dir / "stats")
    print(f"{'vocab_size':>10}  {'bytes/token':>11}  {'train_s':>7}")
    for row in rows:
        print(f"{row['vocab_size']:>10}  {row['bytes_per_token']:>11.3f}  {row['train_seconds']:>7.2f}")
    atomic_write_json(out_dir / "stats.json", {
        "eval_split": "val",
        "eval_texts": len(eval_texts),
        "eval_bytes": sum(len(t.encode("utf-8")) for t in eval_texts),
        "max_chars": max_chars,
        "rows": rows,
    })
    plot_path = out_dir / "bytes_per_token.png"
    plot_bytes_per_token(rows, plot_path)
    print(f"wrote {out_dir / 'stats.json'} and {plot_path}")


def plot_bytes_per_token(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmlab.files import atomic_path

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
