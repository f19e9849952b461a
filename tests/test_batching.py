"""Tests for per-row KV caches (each row at its own position) and the continuous-batching engine.

Tiny random models (width 32, vocab 64) with non-zero projections, so attention really contributes.
"""

from __future__ import annotations

import queue

import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig
from llmlab.model.transformer import Transformer

V, T_MAX = 64, 32


def tiny(**overrides) -> ModelConfig:
    fields = {"d_model": 32, "n_heads": 4, "zero_init_proj": False, **overrides}
    return ModelConfig.preset("default", 2, vocab_size=V, seq_len=T_MAX, **fields)


VARIANTS = {"rope_gqa": tiny(n_kv_heads=2), "learned": tiny(pos_embedding="learned")}


def tokens(B: int, T: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


# ---- per-row KV cache ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANTS)
@torch.no_grad()
def test_per_row_cache_matches_full_forward(name):
    """Rows prefilled one at a time with different lengths, then decoded together, give the full forward's logits."""
    model = Transformer(VARIANTS[name])
    lengths, n_new = [3, 7, 5], 6
    seqs = [tokens(1, n + n_new, seed=i)[0] for i, n in enumerate(lengths)]
    cache = model.make_kv_cache(batch_size=4, per_row=True)
    # a stale occupant in row 1: its slots must be overwritten or masked, never seen
    cache.rows = slice(1, 2)
    model(tokens(1, 12, seed=9), kv_cache=cache)
    cache.pos[1] = 0
    for row, (seq, n) in enumerate(zip(seqs, lengths)):
        cache.rows = slice(row, row + 1)
        prefill, _ = model(seq[None, :n], kv_cache=cache)
        torch.testing.assert_close(prefill, model(seq[None, :n])[0], atol=1e-5, rtol=0)
    cache.rows = slice(0, 3)
    steps = []
    for t in range(n_new):
        step = torch.stack([seq[n + t] for seq, n in zip(seqs, lengths)])[:, None]  # (3, 1)
        steps.append(model(step, kv_cache=cache)[0][:, 0])  # (3, V)
    assert cache.pos.tolist() == [n + n_new for n in lengths] + [0]
    for row, (seq, n) in enumerate(zip(seqs, lengths)):
        full, _ = model(seq[None])
        got = torch.stack([s[row] for s in steps])  # (n_new, V)
        torch.testing.assert_close(got, full[0, n:], atol=1e-5, rtol=0)


@torch.no_grad()
def test_per_row_chunk_and_move_row():
    """Several tokens at once on rows at different positions; a row moved to another slot goes on unchanged."""
    model = Transformer(VARIANTS["rope_gqa"])
    a, b = tokens(1, 12, seed=1)[0], tokens(1, 12, seed=2)[0]
    cache = model.make_kv_cache(batch_size=3, per_row=True)
    for row, (seq, n) in enumerate([(a, 4), (b, 7)]):
        cache.rows = slice(row, row + 1)
        model(seq[None, :n], kv_cache=cache)
    cache.rows = slice(0, 2)
    chunk, _ = model(torch.stack([a[4:7], b[7:10]]), kv_cache=cache)  # (2, 3, V)
    torch.testing.assert_close(chunk[0], model(a[None, :7])[0][0, 4:], atol=1e-5, rtol=0)
    torch.testing.assert_close(chunk[1], model(b[None, :10])[0][0, 7:], atol=1e-5, rtol=0)
    cache.move_row(1, 2)
    cache.rows = slice(2, 3)
    nxt, _ = model(b[None, 10:11], kv_cache=cache)
    torch.testing.assert_close(nxt[0, 0], model(b[None, :11])[0][0, 10], atol=1e-5, rtol=0)


@torch.no_grad()
def test_per_row_cache_errors():
    model = Transformer(VARIANTS["rope_gqa"])
    cache = model.make_kv_cache(batch_size=2, max_len=8, per_row=True)
    with pytest.raises(LlmlabError, match="does not match"):
        model(tokens(1, 2), kv_cache=cache)  # two rows selected
    cache.rows = slice(0, 1)
    model(tokens(1, 6), kv_cache=cache)
    with pytest.raises(LlmlabError, match="overflow"):
        model(tokens(1, 3), kv_cache=cache)
    with pytest.raises(LlmlabError, match="no targets"):
        model(tokens(1, 1), targets=tokens(1, 1), kv_cache=cache)
    cache.reset()
    assert cache.pos.tolist() == [0, 0]
