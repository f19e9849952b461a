"""LoRA: starts at the base model, trains only the adapters, merges into an equivalent plain model; SFT with LoRA."""

from __future__ import annotations

import json

import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig
from llmlab.model.folder import load_model_folder
from llmlab.model.lora import LoRALinear, add_lora, merge_lora
from llmlab.model.transformer import Transformer
from llmlab.train.settings import Bookkeeping
from llmlab.train.sft import SFTConfig, sft


def test_lora_starts_at_base_trains_adapters_and_merges():
    cfg = ModelConfig.from_depth(2, vocab_size=64, seq_len=16, d_model=32, n_heads=2, zero_init_proj=False)
    model = Transformer(cfg, seed=1)
    x = torch.randint(0, 64, (2, 16))
    before = model(x)[0]
    adapters = add_lora(model, rank=4, alpha=8)
    assert torch.equal(model(x)[0], before)  # B = 0: exactly the base model
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == len(adapters) == 2 * 7 * 2  # 2 blocks x (wq, wk, wv, wo, w_gate, w_up, w_down) x (A, B)
    assert sum(isinstance(m, LoRALinear) for m in model.modules()) == len(adapters) // 2
    for p in adapters[1::2]:
        p.data.normal_(0, 0.1)  # pretend training moved B
    adapted = model(x)[0]
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert set(model.state_dict()) == set(Transformer(cfg).state_dict())  # a plain model again
    assert torch.allclose(model(x)[0], adapted, atol=1e-5)
    with pytest.raises(LlmlabError, match="rank"):
        add_lora(Transformer(cfg), rank=0, alpha=1)


def test_sft_with_lora_changes_only_block_matrices(sft_run, tmp_path):
    cfg = SFTConfig(train_files=[tmp_path / "train.jsonl"], epochs=20, batch_size=6, lora_rank=4, lora_alpha=8,
                    lr=0.01, bookkeeping=Bookkeeping(log_every=1, eval_every=0))
    sft(sft_run, cfg)
    losses = [json.loads(line)["loss"] for line in (sft_run / "sft" / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert losses[-1] < 0.7 * losses[0]
    base, _, _ = load_model_folder(sft_run / "base")
    tuned, _, _ = load_model_folder(sft_run / "chat_sft")
    base_state, tuned_state = base.state_dict(), tuned.state_dict()
    assert torch.equal(base_state["embed.weight"], tuned_state["embed.weight"])  # frozen
    assert torch.equal(base_state["norm.weight"], tuned_state["norm.weight"])
    assert not torch.equal(base_state["blocks.0.attn.wq.weight"], tuned_state["blocks.0.attn.wq.weight"])


def test_dpo_with_lora_trains_adapters_and_saves_a_merged_model(sft_run, tmp_path):
    from llmlab.train.prefs import PrefsConfig, prefs

    pairs = tmp_path / "pairs.jsonl"
    with open(pairs, "w", encoding="utf-8") as f:
        for color, chosen, rejected in (("red", "The apple.", "The sky."), ("blue", "The sky.", "The apple.")):
            f.write(json.dumps({"prompt": f"What is {color}?", "chosen": chosen, "rejected": rejected}) + "\n")
    summary = prefs(sft_run, PrefsConfig(start=sft_run / "base", train_files=[pairs], val_files=[pairs], epochs=20,
                                         batch_size=2, lora_rank=4, lora_alpha=8, lr=0.01))
    assert summary["after"]["reward_margin"] > 0
    base, _, _ = load_model_folder(sft_run / "base")
    tuned, _, info = load_model_folder(sft_run / "chat_dpo")
    assert info["stage"] == "dpo" and torch.equal(base.embed.weight, tuned.embed.weight)
    assert not torch.equal(base.blocks[0].attn.wq.weight, tuned.blocks[0].attn.wq.weight)
