"""GGUF export and import: round trips give the same logits, quantised tensors are dequantised exactly as gguf does,
transformers' (and, when installed, llama.cpp's) reading of llmlab's files agrees, and bad files are named."""

from __future__ import annotations

import dataclasses

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, quants

from llmlab.errors import LlmlabError
from llmlab.model.gguf_format import read_gguf, write_gguf
from llmlab.model.loading import load_model
from llmlab.tokenizer.bpe import Tokenizer
from llmlab.tokenizer.chat import render_conversation
from test_hf_format import IDS, random_model

TEXTS = ["Hello world", "  indented code:\n\tx = 1234567", "Héllo wörld — 東京 🙂 naïve café",
         "<|user|> is text"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLAB_CACHE", str(tmp_path / "cache"))


@pytest.fixture(params=["llama", "default"])
def exported(request, tiny_tokenizer, tmp_path):
    """A random GQA model of the "llama" preset (llama arch, untied) or of the default recipe (qwen3 arch, tied)."""
    model, tok = random_model(request.param, d_model=64, n_heads=2, n_kv_heads=1), Tokenizer.load(tiny_tokenizer)
    arch = write_gguf(model, tok, tmp_path / "tiny-f32.gguf", "f32")
    assert arch == ("llama" if request.param == "llama" else "qwen3")
    return model, tok, tmp_path / "tiny-f32.gguf"


def test_round_trip_f32_and_f16(exported, tmp_path):
    model, tok, path = exported
    again, tok2, info = load_model(path)
    assert info["format"] == "gguf" and again.cfg.n_kv_heads == 1
    assert again.cfg.norm_eps == pytest.approx(model.cfg.norm_eps)  # GGUF stores it as float32
    assert dataclasses.replace(again.cfg, norm_eps=model.cfg.norm_eps) == dataclasses.replace(
        model.cfg, zero_init_proj=False, init_std=None)
    with torch.no_grad():
        expected = model(IDS)[0]
        assert torch.equal(again(IDS)[0], expected)  # the q/k permute is undone exactly
        write_gguf(model, tok, tmp_path / "tiny-f16.gguf", "f16")
        half, _, _ = load_model(tmp_path / "tiny-f16.gguf")
        assert (half(IDS)[0] - expected).abs().max() < 2e-2
    assert (tmp_path / "tiny-f16.gguf").stat().st_size < 0.6 * path.stat().st_size
    for text in TEXTS:
        assert tok2.encode(text) == tok.encode(text)
    chat = [{"role": "user", "content": "Hi"}]
    assert render_conversation(tok2, chat)[0] == render_conversation(tok, chat)[0]


def test_transformers_reads_the_llama_gguf(tiny_tokenizer, tmp_path):
    """llama arch only: transformers' GGUF reader ignores qwen3's attention.key_length and takes Qwen3Config's
    head_dim 128 (integrations/ggml.py), so it misreads any qwen3 GGUF whose heads are not 128 wide."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate", reason="transformers needs accelerate to load GGUF files (dev extra)")
    model = random_model("llama", d_model=64, n_heads=2, n_kv_heads=1)
    write_gguf(model, Tokenizer.load(tiny_tokenizer), tmp_path / "tiny.gguf", "f32")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="tiny.gguf", dtype=torch.float32).eval()
    with torch.no_grad():
        assert (hf(IDS).logits - model(IDS)[0]).abs().max() < 1e-4


@pytest.mark.parametrize("kind", ["Q8_0", "Q4_0", "Q4_1"])
def test_quantised_tensors_are_dequantised(kind, exported, tmp_path, monkeypatch):
    model, tok, _ = exported
    qtype = GGMLQuantizationType[kind]
    write = gguf.GGUFWriter.add_tensor

    def add_quantised(self, name, tensor, raw_shape=None, raw_dtype=None):
        if tensor.ndim != 2:
            return write(self, name, tensor)
        return write(self, name, quants.quantize(tensor, qtype), raw_dtype=qtype)

    monkeypatch.setattr(gguf.GGUFWriter, "add_tensor", add_quantised)
    write_gguf(model, tok, tmp_path / "q.gguf", "f32")
    monkeypatch.undo()
    again, _, _ = read_gguf(tmp_path / "q.gguf")
    embed = model.embed.weight.detach().numpy()
    assert np.array_equal(again.embed.weight.detach().numpy(), quants.dequantize(quants.quantize(embed, qtype), qtype))
    with torch.no_grad():
        expected = model(IDS)[0]
        error = (again(IDS)[0] - expected).abs().max() / expected.abs().max()
    assert 0 < error < (0.05 if kind == "Q8_0" else 1.0)  # relative to the largest logit (random weights: rough)


def test_refusals_name_the_problem(exported, tmp_path, monkeypatch):
    model, tok, path = exported
    with pytest.raises(LlmlabError, match=r"ReLU\^2 MLP .*hard-wire SiLU"):
        write_gguf(random_model("default", mlp="relu2"), tok, tmp_path / "x.gguf")
    with pytest.raises(LlmlabError, match=r"learned position embeddings.*LayerNorm.*GELU"):
        write_gguf(random_model("gpt2"), tok, tmp_path / "x.gguf")
    data = path.read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) // 2])
    with pytest.raises(LlmlabError, match="cut.gguf: .*truncated"):
        load_model(tmp_path / "cut.gguf")
    write = gguf.GGUFWriter.add_tensor

    def add_iq4(self, name, tensor, raw_shape=None, raw_dtype=None):
        if tensor.ndim != 2:
            return write(self, name, tensor)
        blocks = np.zeros((tensor.shape[0], tensor.shape[1] // 32 * 18), dtype=np.uint8)  # IQ4_NL: 18 B / 32 values
        return write(self, name, blocks, raw_dtype=GGMLQuantizationType.IQ4_NL)

    monkeypatch.setattr(gguf.GGUFWriter, "add_tensor", add_iq4)
    write_gguf(model, tok, tmp_path / "iq.gguf", "f32")
    monkeypatch.undo()
    with pytest.raises(LlmlabError, match="is IQ4_NL, a quantisation llmlab does not read"):
        load_model(tmp_path / "iq.gguf")


def _llama_cpp():
    return pytest.importorskip(
        "llama_cpp", reason="llama-cpp-python is not installed (optional extra `gguf-check`: "
        "pip install llama-cpp-python, an sdist compiled on install: 3.5 min on 2 cores here)")


def test_llama_cpp_reads_the_tokenizer_and_chat_template(exported):
    """llama.cpp splits text as llmlab does (special token text stays text with special=False), and the chat
    template inside the GGUF, rendered as llama-cpp-python renders it, tokenizes to llmlab's chat ids."""
    llama_cpp = _llama_cpp()
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from llmlab.tokenizer.chat import render_prompt

    model, tok, path = exported
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, vocab_only=True, verbose=False)
    for text in TEXTS:
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == tok.encode(text)
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "And you?"}]
    bos, eos = (tok.token_bytes(i).decode() for i in (tok.bos_id, tok.eos_id))
    formatter = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], bos_token=bos, eos_token=eos)
    prompt = formatter(messages=chat).prompt
    assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == render_prompt(tok, chat)


def test_llama_cpp_gives_the_same_greedy_tokens(exported):
    llama_cpp = _llama_cpp()
    from llmlab.engine.generate import generate_ids

    model, tok, path = exported
    prompt = [tok.bos_id, *tok.encode("The river")]
    ours = generate_ids(model, prompt, 12, temperature=0.0)[0]
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, logits_all=False, verbose=False)
    theirs = []
    for token in llm.generate(prompt, temp=0.0, top_k=1):
        theirs.append(token)
        if len(theirs) == len(ours):
            break
    assert theirs == list(ours)
