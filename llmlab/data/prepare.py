"""`llmlab data prepare`: sources -> cleaned, deduplicated document store -> tokenized shards.

Stages (each skipped when already done with the same settings; outputs under `<run_dir>/data/`):
    1. clean     read every source, clean and filter each document (clean.py, in worker processes), drop exact
                 duplicates (8-byte content hashes), write survivors and their MinHash signatures to disk
    2. dedup     find near-duplicates by sorting LSH band keys (minhash.py), rewrite the store without them as
                 `clean/docs_NNNNN.jsonl`, write `titles.json` (train / val / reserved Wikipedia titles) and
                 `clean/done.json` with the counts of every step
    3. tokenize  encode the store in worker processes, each document starting with BOS, into `tokens/{train,val}_
                 NNNNN.bin` shards (shards.py), then `tokens/manifest.json` last

Memory is bounded by a batch of documents per worker, one shard buffer and O(N) 8-byte keys: a corpus larger than
RAM goes through. The tokenizer is passed in (a picklable zero-argument loader), keeping this layer free of it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import multiprocessing as mp
import os
import shutil
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from llmlab.data.clean import STEPS, CleanConfig, clean_text
from llmlab.data.corpus import Document
from llmlab.data.minhash import near_duplicates, read_signatures, signature, write_signatures
from llmlab.data.shards import ShardWriter, token_dtype
from llmlab.data.sources import INVALID_UTF8_POLICIES, Problems, iter_source, parse_spec
from llmlab.data.split import RESERVED_FRACTION, VAL_FRACTION, is_reserved_title, split_of
from llmlab.data.store import iter_clean_docs
from llmlab.errors import LlmlabError
from llmlab.files import atomic_write_json, fingerprint, read_json, save_config, to_plain
from llmlab.layout import RunDir

log = logging.getLogger(__name__)

BATCH_DOCS = 256  # documents per worker task: big enough to amortise inter-process transfer, small for memory
STORE_FILE_BYTES = 256 << 20  # the store is split into files of ~256 MB


@dataclass
class PrepareConfig:
    """What `llmlab data prepare` reads and how it cleans, splits and shards it.

    Args:
        sources: source specs (see llmlab.data.sources): builtin, txt:PATH, jsonl:PATH[#FIELD], parquet:PATH[#FIELD],
            hf:NAME[#FIELD].
        clean: cleaning thresholds.
        val_fraction: share of documents held out (by a hash of the document id).
        reserved_fraction: share of train Wikipedia titles kept out of fine-tuning for the knowledge test.
        max_doc_chars: text files longer than this are cut at blank lines into several documents.
        on_invalid_utf8: what to do with invalid UTF-8 in a text file: replace (keep the text, each bad byte
            becomes U+FFFD; the count is reported) or skip (leave out the file's text from the first bad byte on,
            reported). JSONL lines with invalid UTF-8 are skipped either way.
        shard_tokens: tokens per shard file (a document never straddles two shards).
        workers: worker processes for cleaning and tokenizing (0: one per CPU core).
    """

    sources: list[str] = field(default_factory=lambda: ["builtin"])
    clean: CleanConfig = field(default_factory=CleanConfig)
    val_fraction: float = VAL_FRACTION
    reserved_fraction: float = RESERVED_FRACTION
    max_doc_chars: int = 100_000
    on_invalid_utf8: str = "replace"
    shard_tokens: int = 50_000_000
    workers: int = 0

    def __post_init__(self) -> None:
        if not self.sources:
            raise LlmlabError("sources: give at least one source")
        for spec in self.sources:
            parse_spec(spec)
        if not 0.0 < self.val_fraction < 1.0:
            raise LlmlabError(f"val_fraction: {self.val_fraction} is not between 0 and 1")
        if self.on_invalid_utf8 not in INVALID_UTF8_POLICIES:
            raise LlmlabError(f"on_invalid_utf8: {self.on_invalid_utf8!r} is not one of "
                              f"{', '.join(INVALID_UTF8_POLICIES)}")

    def n_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    def clean_fingerprint(self) -> str:
        settings = to_plain(self)
        for key in ("shard_tokens", "workers"):  # these do not change the cleaned documents
            settings.pop(key)
        return fingerprint(settings)


# --------------------------------------------------------------------------------------------- stage 1: clean


def _clean_batch(batch: list[tuple[str, str, str, str | None]], cfg: CleanConfig) -> list[tuple]:
    """Worker: clean each (id, text, source, title); return (id, text|None, source, title, removed_by, changed, sig)."""
    out = []
    for doc_id, text, source, title in batch:
        cleaned, removed_by, changed = clean_text(text, cfg)
        sig = signature(cleaned) if cleaned is not None and cfg.near_dup_threshold <= 1.0 else None
        out.append((doc_id, cleaned, source, title, removed_by, changed, len(text), sig))
    return out


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[tuple]]:
    it = iter(docs)
    while batch := [(d.id, d.text, d.source, d.title) for d in itertools.islice(it, size)]:
        yield batch


class _StoreWriter:
    """Writes documents as JSON lines into `{prefix}_NNNNN.jsonl` files of ~STORE_FILE_BYTES each."""

    def __init__(self, folder: Path, prefix: str):
        self.folder, self.prefix, self.files, self._f, self._bytes = folder, prefix, [], None, 0

    def write(self, record: dict) -> None:
        if self._f is None or self._bytes > STORE_FILE_BYTES:
            self.close()
            path = self.folder / f"{self.prefix}_{len(self.files):05d}.jsonl"
            self.files.append(path)
            self._f, self._bytes = open(path, "w", encoding="utf-8"), 0
        line = json.dumps(record, ensure_ascii=False) + "\n"
        self._f.write(line)
        self._bytes += len(line)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _pool(cfg: PrepareConfig, initializer: Callable | None = None, initargs: tuple = ()):
    # spawn, not fork: the CLI process may hold threads (torch, tokenizers) that fork would copy in a broken state
    return mp.get_context("spawn").Pool(cfg.n_workers(), initializer=initializer, initargs=initargs)


def _bounded_imap(pool, fn: Callable, tasks: Iterable, max_pending: int) -> Iterator:
    """Like pool.imap, in order, but reads ahead at most `max_pending` tasks (Pool.imap drains its whole input
    into the queue at once, which would pull a corpus larger than RAM into memory)."""
    pending: deque = deque()
    for task in tasks:
        pending.append(pool.apply_async(fn, (task,)))
        if len(pending) >= max_pending:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def clean_stage(run_dir: Path, cfg: PrepareConfig) -> dict:
    """Stages 1-2. Returns the cleaning report (also saved in clean/done.json)."""
    folder = RunDir(run_dir).clean
    done = folder / "done.json"
    fp = cfg.clean_fingerprint()
    if done.exists() and read_json(done).get("fingerprint") == fp:
        log.info("data: cleaned store is up to date (%s), skipping", done)
        return read_json(done)["report"]
    if folder.exists():
        shutil.rmtree(folder)  # an unfinished or outdated store: start it over
    folder.mkdir(parents=True)
    save_config(RunDir(run_dir).data / "prepare_config.yaml", cfg)

    problems = Problems()
    seen: set[bytes] = set()  # exact dedup: 8-byte blake2b of the cleaned text
    counts: dict = {"read": Counter(), "removed": defaultdict(Counter), "changed": defaultdict(Counter), "kept": Counter()}
    staging = _StoreWriter(folder, "stage")
    sig_path = folder / "minhash.u32"
    signatures: list[np.ndarray] = []

    def all_docs() -> Iterator[Document]:
        for spec in cfg.sources:
            try:
                yield from iter_source(spec, problems, cfg.max_doc_chars, cfg.on_invalid_utf8)
            except LlmlabError as e:  # e.g. a missing data package: report, go on with the other sources
                problems.add(spec, str(e))

    with _pool(cfg) as pool, tqdm(desc="clean", unit=" docs", dynamic_ncols=True) as bar:
        results = _bounded_imap(pool, _CleanTask(cfg.clean), _batches(all_docs(), BATCH_DOCS), 4 * cfg.n_workers())
        for batch in results:
            for doc_id, text, source, title, removed_by, changed, raw_chars, sig in batch:
                counts["read"][source] += 1
                for step in changed:
                    counts["changed"][step][source] += 1
                if removed_by is None:
                    key = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
                    if key in seen:
                        removed_by = "exact_dup"
                    seen.add(key)
                if removed_by is not None:
                    counts["removed"][removed_by][source] += 1
                    continue
                record = {"id": doc_id, "source": source, "split": split_of(doc_id, cfg.val_fraction), "text": text}
                if title is not None:
                    record["title"] = title
                staging.write(record)
                if sig is not None:
                    signatures.append(sig)
                    if len(signatures) >= 4096:
                        write_signatures(sig_path, signatures)
                        signatures = []
            bar.update(len(batch))
    staging.close()
    write_signatures(sig_path, signatures)
    del seen

    # stage 2: near-duplicates, then the final store
    drop = near_duplicates(read_signatures(sig_path), cfg.clean.near_dup_threshold)
    final = _StoreWriter(folder, "docs")
    titles: dict[str, list[str]] = {"train": [], "val": [], "reserved": []}
    index = 0
    chars = Counter()
    for path in staging.files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                if index < len(drop) and drop[index]:
                    counts["removed"]["near_dup"][record["source"]] += 1
                else:
                    final.write(record)
                    counts["kept"][f"{record['source']}/{record['split']}"] += 1
                    chars[record["split"]] += len(record["text"])
                    if "title" in record:
                        titles[record["split"]].append(record["title"])
                        if record["split"] == "train" and is_reserved_title(record["title"], cfg.val_fraction, cfg.reserved_fraction):
                            titles["reserved"].append(record["title"])
                index += 1
        path.unlink()
    final.close()
    sig_path.unlink(missing_ok=True)
    if not final.files:
        raise LlmlabError(
            "no usable documents left after reading and cleaning the sources"
            + (f"; problems: {'; '.join(problems.items[:5])}" if problems.items else "")
        )
    atomic_write_json(RunDir(run_dir).data / "titles.json", titles)
    report = {
        "sources": cfg.sources,
        "read": dict(counts["read"]),
        "changed": {step: dict(c) for step, c in counts["changed"].items()},
        "removed": {step: dict(counts["removed"][step]) for step in (*STEPS[2:], "exact_dup", "near_dup") if counts["removed"][step]},
        "kept": dict(counts["kept"]),
        "chars": dict(chars),
        "problems": problems.items,
    }
    atomic_write_json(done, {"fingerprint": fp, "report": report})
    return report


class _CleanTask:
    """Picklable callable for the pool: cleans a batch with a given config."""

    def __init__(self, cfg: CleanConfig):
        self.cfg = cfg

    def __call__(self, batch: list[tuple]) -> list[tuple]:
        return _clean_batch(batch, self.cfg)


# ------------------------------------------------------------------------------------------ stage 3: tokenize

_worker_tokenizer = None


def _init_tokenizer(load_tokenizer: Callable) -> None:
    global _worker_tokenizer
    _worker_tokenizer = load_tokenizer()


def _encode_batch(batch: list[tuple[str, str]]) -> list[tuple[str, np.ndarray, int]]:
    """Worker: [(split, text)] -> [(split, tokens with BOS first, utf-8 bytes)]."""
    tok = _worker_tokenizer
    dtype = token_dtype(tok.vocab_size)
    ids = tok.encode_batch([text for _, text in batch])
    return [
        (split, np.array([tok.bos_id, *doc_ids], dtype=dtype), len(text.encode("utf-8")))
        for (split, text), doc_ids in zip(batch, ids)
    ]


def tokenize_stage(run_dir: Path, cfg: PrepareConfig, load_tokenizer: Callable, tokenizer_info: dict) -> dict:
    """Stage 3. `load_tokenizer()` returns an object with encode_batch, bos_id, vocab_size (each worker calls it);
    `tokenizer_info` = {"sha256", "vocab_size", "bos_id", "folder"}. Returns the manifest."""
    folder = RunDir(run_dir).tokens
    manifest_path = folder / "manifest.json"
    clean_done = read_json(RunDir(run_dir).clean_done)
    fp = fingerprint({"clean": clean_done["fingerprint"], "tokenizer": tokenizer_info["sha256"], "shard_tokens": cfg.shard_tokens})
    if manifest_path.exists() and read_json(manifest_path).get("fingerprint") == fp:
        log.info("data: token shards are up to date (%s), skipping", manifest_path)
        return read_json(manifest_path)
    if folder.exists():
        shutil.rmtree(folder)
    dtype = token_dtype(tokenizer_info["vocab_size"])
    writers = {s: ShardWriter(folder, s, dtype, tokenizer_info["sha256"], cfg.shard_tokens) for s in ("train", "val")}
    sizes = {s: {"docs": 0, "tokens": 0, "bytes": 0} for s in writers}
    total = sum(clean_done["report"]["kept"].values())

    def texts() -> Iterator[list[tuple[str, str]]]:
        docs = iter_clean_docs(run_dir)
        while batch := [(d["split"], d["text"]) for d in itertools.islice(docs, BATCH_DOCS)]:
            yield batch

    with _pool(cfg, _init_tokenizer, (load_tokenizer,)) as pool, tqdm(total=total, desc="tokenize", unit=" docs", dynamic_ncols=True) as bar:
        for batch in _bounded_imap(pool, _encode_batch, texts(), 4 * cfg.n_workers()):
            for split, tokens, n_bytes in batch:
                writers[split].add(tokens)
                sizes[split]["docs"] += 1
                sizes[split]["tokens"] += len(tokens)
                sizes[split]["bytes"] += n_bytes
            bar.update(len(batch))
    manifest = {
        "format": "llmlab-tokens",
        "version": 1,
        "fingerprint": fp,
        "dtype": dtype.name,
        "tokenizer": tokenizer_info,
        "splits": {s: {**sizes[s], "shards": writers[s].close()} for s in writers},
        "sources": cfg.sources,
    }
    atomic_write_json(manifest_path, manifest)  # last: its presence marks the shards complete
    return manifest
