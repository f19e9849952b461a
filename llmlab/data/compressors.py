"""Classical compressors as baselines for a language model's bits per byte (bpb = 8 * compressed / raw bytes).

    table = compressor_bpb(data)                      # {"gzip": 2.87, "bzip2": 2.13, "xz": 2.14, "zstd": ..., ...}
    name, bpb = best_compressor(table)                # the bar a model must beat on these exact bytes
    chunked = compressor_bpb(data, chunk_size=2048)   # each 2048-byte chunk compressed on its own (Delétang et al.)

Settings (all in-process, through Python bindings; no system tools):

    gzip    DEFLATE level 9, as `gzip -9`                 (zlib module)
    bzip2   block size 900 KB, as `bzip2 -9`              (bz2 module)
    xz      LZMA2 preset 9 | EXTREME, as `xz -9e`         (lzma module)
    zstd    level 19, as `zstd -19`                       (`zstandard` package)
    brotli  quality 11, window 24, as `brotli -q 11 -w 24` (`brotli` package)

Each writes its bare stream: zlib framing instead of gzip's 18-byte header, raw LZMA2 instead of the ~60-byte .xz
container, a zstd frame without checksum or content size. On whole files that changes nothing visible (the anchors'
table, /work/shared/notes/anchors.md section 5, was measured with the command-line tools); on 2048-byte chunks a
60-byte header alone would cost 0.23 bpb, and the model's arithmetic coder pays no header either. On such chunks
brotli wins by far (about 3.0 bpb on the wiki text against 4.2-4.4 for the others) thanks to its built-in 120 KB
dictionary of common English and web words: a prior, as a model's weights are.

Run the checks: `.venv/bin/pytest tests/test_compressors.py`.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Callable

from llmlab.errors import LlmlabError

LZMA_PRESET = 9 | lzma.PRESET_EXTREME
LZMA_MAX_DICT = 64 << 20  # preset 9's dictionary; the decoder accepts any stream written with a dictionary <= this
LZMA_MIN_DICT = 4096  # liblzma's smallest dictionary


def _lzma_filters(dict_size: int) -> list[dict]:
    return [{"id": lzma.FILTER_LZMA2, "preset": LZMA_PRESET, "dict_size": dict_size}]


def _xz_compress(data: bytes) -> bytes:
    # A dictionary larger than the input finds no more matches; capping it spares allocating and zeroing 674 MB of
    # match-finder tables per call, which would dominate chunked runs.
    dict_size = min(LZMA_MAX_DICT, max(LZMA_MIN_DICT, len(data)))
    return lzma.compress(data, format=lzma.FORMAT_RAW, filters=_lzma_filters(dict_size))


def _xz_decompress(blob: bytes) -> bytes:
    return lzma.decompress(blob, format=lzma.FORMAT_RAW, filters=_lzma_filters(LZMA_MAX_DICT))


def _zstd_compress(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=19, write_checksum=False, write_content_size=False).compress(data)


def _zstd_decompress(blob: bytes) -> bytes:
    import zstandard

    with zstandard.ZstdDecompressor().stream_reader(blob) as reader:  # the frame does not record its size
        return reader.read()


def _brotli_compress(data: bytes) -> bytes:
    import brotli

    return brotli.compress(data, quality=11, lgwin=24)


def _brotli_decompress(blob: bytes) -> bytes:
    import brotli

    return brotli.decompress(blob)


# name -> (compress, decompress); the order is the order of the table.
COMPRESSORS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    "gzip": (lambda data: zlib.compress(data, 9), zlib.decompress),
    "bzip2": (lambda data: bz2.compress(data, 9), bz2.decompress),
    "xz": (_xz_compress, _xz_decompress),
    "zstd": (_zstd_compress, _zstd_decompress),
    "brotli": (_brotli_compress, _brotli_decompress),
}

# The equivalent command line of each, for reports.
SETTINGS = {"gzip": "gzip -9", "bzip2": "bzip2 -9", "xz": "xz -9e", "zstd": "zstd -19", "brotli": "brotli -q 11 -w 24"}


def chunks(data: bytes, chunk_size: int | None) -> list[bytes]:
    """`data` cut into pieces of chunk_size bytes (the last may be shorter); [data] when chunk_size is None."""
    if chunk_size is None:
        return [data]
    if chunk_size < 1:
        raise LlmlabError(f"chunk_size must be a positive number of bytes, got {chunk_size}")
    return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]


def compressed_size(name: str, data: bytes, chunk_size: int | None = None) -> int:
    """Total bytes of `data` compressed by compressor `name`, whole or chunk by chunk."""
    if name not in COMPRESSORS:
        raise LlmlabError(f"unknown compressor {name!r}; known: {', '.join(COMPRESSORS)}")
    compress = COMPRESSORS[name][0]
    return sum(len(compress(piece)) for piece in chunks(data, chunk_size))


def compressor_bpb(
    data: bytes, chunk_size: int | None = None, names: tuple[str, ...] | None = None
) -> dict[str, float]:
    """Bits per byte of each compressor on `data` (whole, or each chunk_size-byte chunk independently).

    names: which compressors (default: all of COMPRESSORS, in its order).
    """
    if not data:
        raise LlmlabError("no data to compress: bits per byte of an empty input is undefined")
    return {name: 8 * compressed_size(name, data, chunk_size) / len(data) for name in names or tuple(COMPRESSORS)}


def best_compressor(table: dict[str, float]) -> tuple[str, float]:
    """The (name, bpb) with the fewest bits per byte in a `compressor_bpb` table."""
    if not table:
        raise LlmlabError("no compressor results to pick the best of")
    name = min(table, key=table.__getitem__)
    return name, table[name]
