"""Int8 weight-only inference: each weight within half a quantization step, logits close to float32's, greedy
tokens the same on a small model, and the paths that need float weights refused."""

from __future__ import annotations

import copy

import pytest
import torch

from llmlab.engine.generate import generate_ids
from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig
from llmlab.model.folder import save_model_folder
from llmlab.model.loading import load_model
from llmlab.model.quantize import Int8Linear, int8_rows, quantize
from llmlab.model.transformer import Transformer


def test_rows_round_to_within_half_a_step():
    w = torch.randn(64, 48) * torch.logspace(-2, 1, 64)[:, None]  # rows of very different scales
    q, scales = int8_rows(w)
    assert q.dtype == torch.int8 and int(q.abs().max()) == 127
    assert torch.all((w - q.float() * scales[:, None]).abs() <= scales[:, None] / 2 + 1e-7)
    x = torch.randn(3, 5, 48)
    layer = Int8Linear(w)
    torch.testing.assert_close(layer(x), x @ (q.float() * scales[:, None]).T, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("tied", [True, False])
def test_quantized_logits_and_greedy_tokens_follow_float32(tied, tmp_path, tiny_tokenizer):
    cfg = ModelConfig.preset("llama", 2, vocab_size=300, seq_len=64, d_model=64, n_heads=4, tie_embeddings=tied,
                             zero_init_proj=False)
    model = Transformer(cfg, seed=4).eval()
    ids = torch.randint(0, 300, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(ids)[0]
        small = quantize(copy.deepcopy(model), "int8")
        got = small(ids)[0]
    assert (got - expected).abs().max() < 0.05 * expected.abs().max()  # int8 rounding, not a different model
    prompt = ids[0, :5].tolist()
    assert generate_ids(small, prompt, 12, temperature=0.0) == generate_ids(model, prompt, 12, temperature=0.0)
    assert not any(isinstance(m, torch.nn.Linear) for m in small.modules())
    assert sum(b.numel() for b in small.buffers() if b.dtype == torch.int8) > 0.5 * sum(
        p.numel() for p in model.parameters())


def test_load_model_quantizes_and_names_unknown_formats(tmp_path, tiny_tokenizer):
    from llmlab.tokenizer.bpe import Tokenizer

    tok = Tokenizer.load(tiny_tokenizer)
    cfg = ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=32, d_model=32, n_heads=2)
    save_model_folder(tmp_path / "m", Transformer(cfg), tiny_tokenizer, {"stage": "base"})
    model, _, info = load_model(tmp_path / "m", quantize="int8")
    assert info["quantize"] == "int8" and isinstance(model.blocks[0].attn.wq, Int8Linear)
    with pytest.raises(LlmlabError, match="quantize 'int4': unknown; formats are int8"):
        load_model(tmp_path / "m", quantize="int4")
