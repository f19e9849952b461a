"""Binary token shards: the format the pre-training loader reads.

A shard is one file `{split}_{index:05d}.bin`: a 64-byte little-endian header, then the tokens of whole documents,
each starting with BOS, as uint16 (vocab <= 65,536) or uint32.

    offset  size  field
    0       8     magic b"LLMLABTK"
    8       4     format version (1)
    12      4     bytes per token (2 or 4)
    16      8     number of tokens
    24      8     number of documents
    32      16    first 16 hex digits of the tokenizer's sha256 (ascii), so a shard from another tokenizer is caught
    48      16    zero padding

Shards are written to a temporary name and renamed when complete; `manifest.json` beside them is written last, so a
folder without a manifest is an unfinished one. Reading is memory-mapped: a corpus larger than RAM is fine.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmlab.errors import LlmlabError
from llmlab.files import atomic_path

MAGIC = b"LLMLABTK"
VERSION = 1
HEADER_BYTES = 64
_HEADER = struct.Struct("<8sIIQQ16s16x")
assert _HEADER.size == HEADER_BYTES


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


@dataclass(frozen=True)
class ShardHeader:
    itemsize: int
    n_tokens: int
    n_docs: int
    tokenizer_hash: str  # 16 hex digits

    def pack(self) -> bytes:
        return _HEADER.pack(MAGIC, VERSION, self.itemsize, self.n_tokens, self.n_docs, self.tokenizer_hash.encode("ascii"))


def read_header(path: Path) -> ShardHeader:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except OSError as e:
        raise LlmlabError(f"{path}: cannot read token shard ({e.strerror})") from e
    if len(raw) < HEADER_BYTES:
        raise LlmlabError(f"{path}: not a token shard (file is {len(raw)} bytes, shorter than the 64-byte header)")
    magic, version, itemsize, n_tokens, n_docs, tok_hash = _HEADER.unpack(raw)
    if magic != MAGIC:
        raise LlmlabError(f"{path}: not an llmlab token shard (bad magic {magic!r})")
    if version != VERSION:
        raise LlmlabError(f"{path}: token shard format version {version}, this llmlab reads version {VERSION}")
    if itemsize not in (2, 4):
        raise LlmlabError(f"{path}: corrupt header (bytes per token = {itemsize})")
    expected = HEADER_BYTES + n_tokens * itemsize
    actual = path.stat().st_size
    if actual != expected:
        raise LlmlabError(
            f"{path}: truncated or corrupt token shard: header says {n_tokens} tokens ({expected} bytes), file has {actual} bytes"
        )
    return ShardHeader(itemsize, n_tokens, n_docs, tok_hash.decode("ascii"))


def open_shard(path: Path, tokenizer_hash: str | None = None) -> np.memmap:
    """Memory-map a shard's tokens (1-D, uint16 or uint32). Checks the header, and the tokenizer if given."""
    header = read_header(path)
    if tokenizer_hash is not None and header.tokenizer_hash != tokenizer_hash[:16]:
        raise LlmlabError(
            f"{path}: shard was made with tokenizer {header.tokenizer_hash}, but the tokenizer in use is {tokenizer_hash[:16]}; "
            "re-run `llmlab data prepare` with this tokenizer"
        )
    dtype = np.uint16 if header.itemsize == 2 else np.uint32
    if header.n_tokens == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(header.n_tokens,))


class ShardWriter:
    """Appends whole documents (token arrays starting with BOS) to `{split}_NNNNN.bin` shards of ~`shard_tokens` tokens.

    Memory is bounded by one shard's buffer. A document never straddles two shards.
    """

    def __init__(self, folder: Path, split: str, dtype: np.dtype, tokenizer_hash: str, shard_tokens: int = 50_000_000):
        self.folder, self.split, self.dtype = Path(folder), split, np.dtype(dtype)
        self.tokenizer_hash = tokenizer_hash[:16]
        self.shard_tokens = shard_tokens
        self.shards: list[dict] = []  # one {"file", "tokens", "docs"} per finished shard
        self._buf: list[np.ndarray] = []
        self._buf_tokens = 0
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(self, tokens: np.ndarray) -> None:
        self._buf.append(np.asarray(tokens, dtype=self.dtype))
        self._buf_tokens += len(tokens)
        if self._buf_tokens >= self.shard_tokens:
            self._flush()

    def close(self) -> list[dict]:
        if self._buf or not self.shards:  # an empty split still gets one (empty) shard so readers find it
            self._flush()
        return self.shards

    def _flush(self) -> None:
        name = f"{self.split}_{len(self.shards):05d}.bin"
        header = ShardHeader(self.dtype.itemsize, self._buf_tokens, len(self._buf), self.tokenizer_hash)
        with atomic_path(self.folder / name) as tmp:
            with open(tmp, "wb") as f:
                f.write(header.pack())
                for arr in self._buf:
                    f.write(arr.tobytes())
        self.shards.append({"file": name, "tokens": self._buf_tokens, "docs": len(self._buf)})
        self._buf, self._buf_tokens = [], 0


def document_lengths(tokens: np.ndarray, bos_id: int) -> np.ndarray:
    """Length in tokens (BOS included) of each document in a shard's token stream."""
    starts = np.flatnonzero(tokens == bos_id)
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.diff(np.append(starts, len(tokens)))
