"""Hugging Face export and import: logits equal transformers' within 1e-4, and bad folders give clear errors."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat

import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig
from llmlab.model.folder import save_model_folder
from llmlab.model.hf_format import copy_tokenizer_files, export_hf
from llmlab.model.loading import load_model
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.bpe import Tokenizer
from llmlab.tokenizer.chat import render_conversation, render_prompt

IDS = torch.tensor([[0, 5, 17, 250, 399, 42, 7, 300, 12, 1]])


def random_model(preset: str, **overrides) -> Transformer:
    """A tiny model whose every weight is random (the default init zeroes output projections)."""
    cfg = ModelConfig.preset(preset, 2, vocab_size=400, seq_len=64, **{"n_kv_heads": 2, "rope_theta": 5e5, **overrides})
    model = Transformer(cfg)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.eval()


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLAB_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("preset,arch", [("llama", "LlamaForCausalLM"), ("default", "Qwen3ForCausalLM")])
def test_export_matches_transformers(preset, arch, tiny_tokenizer, tmp_path):
    transformers = pytest.importorskip("transformers")
    model, tok = random_model(preset), Tokenizer.load(tiny_tokenizer)
    assert export_hf(model, tok, tmp_path / "hf") == arch
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert type(hf).__name__ == arch
    with torch.no_grad():
        expected = model(IDS)[0]
        assert (hf(IDS).logits - expected).abs().max() < 1e-4
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    chat = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello."}]
    rendered = hf_tok.apply_chat_template(chat, tokenize=False)
    assert hf_tok(rendered, add_special_tokens=False)["input_ids"] == render_conversation(tok, chat)[0]
    # and back into llmlab: the same logits
    again, tok2, info = load_model(tmp_path / "hf")
    assert info["format"] == "hf"
    assert again.cfg == dataclasses.replace(model.cfg, zero_init_proj=False, init_std=None)
    assert torch.equal(again(IDS)[0], expected)
    assert tok2.encode("Hello world") == tok.encode("Hello world")


def test_export_refuses_what_transformers_cannot_compute(tiny_tokenizer, tmp_path):
    with pytest.raises(LlmlabError, match="learned position embeddings.*LayerNorm.*GELU"):
        export_hf(random_model("gpt2"), Tokenizer.load(tiny_tokenizer), tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def _hf_llama(tmp_path, tiny_tokenizer, tied: bool):
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(vocab_size=400, hidden_size=96, intermediate_size=160, num_hidden_layers=2,
                                      num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64,
                                      rope_theta=100000.0, tie_word_embeddings=tied, rms_norm_eps=1e-5)
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():  # RMSNorm gains start at 1: make them count
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.add_(torch.randn(p.shape) * 0.1)
    folder = tmp_path / "hf-llama"
    hf.save_pretrained(folder)
    copy_tokenizer_files(tiny_tokenizer, folder)
    return hf, folder


@pytest.mark.parametrize("tied", [False, True])
def test_import_transformers_llama(tied, tiny_tokenizer, tmp_path):
    hf, folder = _hf_llama(tmp_path, tiny_tokenizer, tied)
    model, tok, info = load_model(folder)
    assert model.cfg.tie_embeddings is tied and model.cfg.n_kv_heads == 2 and model.cfg.rope_theta == 100000.0
    with torch.no_grad():
        assert (model(IDS)[0] - hf(IDS).logits).abs().max() < 1e-4
    assert info["stage"] == "imported" and tok.encode("Hello") == Tokenizer.load(tiny_tokenizer).encode("Hello")


def test_import_cli_writes_an_llmlab_folder(tiny_tokenizer, tmp_path):
    from llmlab.cli.import_model import import_model

    hf, folder = _hf_llama(tmp_path, tiny_tokenizer, tied=False)
    import_model(str(folder), out=tmp_path / "mine")
    model, _, info = load_model(tmp_path / "mine")
    assert info["format"] == "llmlab-model" and info["stage"] == "imported"
    with torch.no_grad():
        assert (model(IDS)[0] - hf(IDS).logits).abs().max() < 1e-4


def test_bad_hf_folders_are_named(tiny_tokenizer, tmp_path):
    hf, folder = _hf_llama(tmp_path, tiny_tokenizer, tied=True)
    config = json.loads((folder / "config.json").read_text())
    broken = tmp_path / "broken"

    def variant(name: str, **changes):
        shutil.rmtree(broken, ignore_errors=True)
        shutil.copytree(folder, broken)
        (broken / "config.json").write_text(json.dumps({**config, **changes}))
        return broken

    with pytest.raises(LlmlabError, match="model_type 'gpt2' is not a Llama-family"):
        load_model(variant("gpt2", model_type="gpt2"))
    with pytest.raises(LlmlabError, match="rope_scaling"):
        load_model(variant("yarn", rope_scaling={"rope_type": "yarn", "factor": 4.0}))
    with pytest.raises(LlmlabError, match="embed_tokens.weight has shape"):
        load_model(variant("vocab", vocab_size=500))
    with pytest.raises(LlmlabError, match="tokenizer has 400 tokens but the weights only 300"):
        state = {k: v[:300] if "embed" in k else v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
        from safetensors.torch import save_file

        save_file(state, variant("small", vocab_size=300) / "model.safetensors")
        load_model(broken)
    data = (folder / "model.safetensors").read_bytes()
    (variant("cut") / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(LlmlabError, match="truncated"):
        load_model(broken)
    with pytest.raises(LlmlabError, match="not a model llmlab can load"):
        load_model(tmp_path)


def test_llmlab_folders_still_load(tiny_tokenizer, tmp_path):
    model = random_model("default")
    save_model_folder(tmp_path / "m", model, tiny_tokenizer, {"stage": "base"})
    again, tok, info = load_model(tmp_path / "m")
    assert info["stage"] == "base" and torch.equal(again(IDS)[0], model(IDS)[0])


SMOL_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                 "{{ '<|im_start|>system\\nBe kind.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + "
                 "'\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
                 "{{ '<|im_start|>assistant\\n' }}{% endif %}")


@pytest.fixture(scope="module")
def chatml_tokenizer(tmp_path_factory):
    """A SmolLM2-style tokenizer (digits split, GPT-2 byte-level regex, ChatML) trained on a few sentences."""
    from conftest import make_text
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers
    import random

    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False)])
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    rng = random.Random(0)
    hf.train_from_iterator([make_text(rng, 100) for _ in range(100)], trainer)
    folder = tmp_path_factory.mktemp("chatml")
    hf.save(str(folder / "tokenizer.json"))
    (folder / "chat_template.jinja").write_text(SMOL_TEMPLATE)
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
        "pad_token": "<|im_end|>", "model_max_length": 64}))
    return folder


def test_imported_tokenizer_and_chatml(chatml_tokenizer):
    transformers = pytest.importorskip("transformers")
    tok, hf_tok = Tokenizer.load(chatml_tokenizer), transformers.AutoTokenizer.from_pretrained(chatml_tokenizer)
    assert tok.chat_format == "chatml" and tok.default_system == "Be kind." and not tok.add_bos
    for text in ["Hello world 12345", "  two  spaces\n\n\ttab", "naïve café 🙂", "<|im_end|> typed"]:
        assert tok.decode(tok.encode(text)) == text
        if "<|" not in text:  # typed special-token text stays ordinary text in llmlab, as for its own tokenizers
            assert tok.encode(text) == hf_tok(text, add_special_tokens=False)["input_ids"]
    chat = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello."}]
    ids, mask = render_conversation(tok, chat)
    assert ids == hf_tok.apply_chat_template(chat, tokenize=True, return_dict=False)
    assert tok.decode([i for i, m in zip(ids, mask) if m]) == "Hello.<|im_end|>"
    assert render_prompt(tok, chat[:1]) == hf_tok.apply_chat_template(chat[:1], add_generation_prompt=True,
                                                                       return_dict=False)
    with pytest.raises(LlmlabError, match="ChatML format has roles"):
        render_prompt(tok, [{"role": "tool", "content": "4"}])


def test_fine_tuning_starts_from_any_model(tiny_tokenizer, chatml_tokenizer, tmp_path):
    from llmlab.files import file_sha256
    from llmlab.train.finetune import load_start

    _, folder = _hf_llama(tmp_path, tiny_tokenizer, tied=True)
    for name in ("tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        (folder / name).unlink(missing_ok=True)
    copy_tokenizer_files(chatml_tokenizer, folder)
    model, tok, sha = load_start(folder, "cpu")
    assert sha == file_sha256(folder / "model.safetensors") and model.cfg.tie_embeddings
    assert tok.chat_format == "chatml" and tok.eos_id == tok.special_ids["end_of_turn"] == 2


def test_hub_names_download_then_load_as_folders(tiny_tokenizer, tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    _, folder = _hf_llama(tmp_path, tiny_tokenizer, tied=True)
    asked = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, **kw: asked.append(repo) or str(folder))
    model, _, info = load_model("hf:someone/tiny-llama")  # offline test: the download is the local folder
    assert asked == ["someone/tiny-llama"] and info["source"] == "hf:someone/tiny-llama" and model.cfg.depth == 2

    def offline(repo, **kw):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(LlmlabError, match="hf:someone/tiny-llama: download failed .*no network"):
        load_model("hf:someone/tiny-llama")


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_folders_and_files_follow_the_umask(umask, tiny_tokenizer, tmp_path):
    from llmlab.model.gguf_format import write_gguf

    model, tok = random_model("llama"), Tokenizer.load(tiny_tokenizer)
    old = os.umask(umask)
    try:
        save_model_folder(tmp_path / "llmlab_folder", model, tiny_tokenizer, {"stage": "base"})
        export_hf(model, tok, tmp_path / "hf_folder")
        write_gguf(model, tok, tmp_path / "model.gguf")
    finally:
        os.umask(old)
    for folder in ("llmlab_folder", "llmlab_folder/tokenizer", "hf_folder"):
        assert stat.S_IMODE((tmp_path / folder).stat().st_mode) == 0o777 & ~umask, folder
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 6 and all(stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask for p in files), \
        {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
