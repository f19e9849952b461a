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
from llmlab.layout import RunDir
from llmlab.tokenizer.bpe import DEFAULT_VOCAB_SIZE

log = logging.getLogger(__name__)


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
    from llmlab.pipeline.prepare import train_run_tokenizer

    train_run_tokenizer(run_dir, vocab_size, max_chars, force)


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
    tok = Tokenizer.load(RunDir(run_dir).tokenizer)
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

    print(Tokenizer.load(RunDir(run_dir).tokenizer).decode(ids))


def stats(*, run_dir: Path, vocab_sizes: list[int] | None = None, max_chars: int | None = None) -> None:
    """Compare vocabulary sizes: train a tokenizer for each on the train texts and measure bytes/token on the val texts.

    Writes <run_dir>/tokenizer/stats.json and <run_dir>/tokenizer/bytes_per_token.png; the run's own tokenizer is
    left alone.

    Args:
        run_dir: The run folder (holds data/clean/ from `llmlab data prepare`).
        vocab_sizes: The sizes to compare (None: [1024, 2048, 4096, 8192]).
        max_chars: Use at most this many characters of train text, and of val text (None: all).
    """
    from llmlab.pipeline.prepare import tokenizer_sweep

    plot = tokenizer_sweep(run_dir, vocab_sizes or [1024, 2048, 4096, 8192], max_chars)
    print(f"wrote {plot.parent / 'stats.json'} and {plot}")
