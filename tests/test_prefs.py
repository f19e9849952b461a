"""DPO: the loss falls, held-out preference accuracy rises above the starting model's, outputs are saved."""

from __future__ import annotations

import json

import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig
from llmlab.model.folder import load_model_folder, save_model_folder
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.bpe import Tokenizer
from llmlab.tokenizer.conversations import load_preference_file
from llmlab.train.prefs import Conversations, PrefsConfig, all_logprobs, preference_metrics, prefs, render_pairs
from llmlab.train.settings import Bookkeeping

PAIRS = [("red", "The apple.", "The sky."), ("green", "The grass.", "The night."), ("blue", "The sky.", "The apple."),
         ("white", "The snow.", "The grass."), ("black", "The night.", "The snow."), ("yellow", "The sun.", "The sky.")]


def test_preference_metrics():
    policy = torch.tensor([-1.0, -2.0, -3.0, -1.0])  # pair 0 prefers chosen, pair 1 does not
    reference = torch.tensor([-2.0, -2.0, -2.0, -2.0])
    m = preference_metrics(policy, reference, beta=0.5)
    assert m["pref_accuracy"] == 0.5 and m["reward_accuracy"] == 0.5
    assert m["reward_margin"] == pytest.approx(0.5 * ((1 - 0) + (-1 - 1)) / 2)


def test_dpo_prefers_the_chosen_answers(tmp_path, tiny_tokenizer, capsys):
    tok = Tokenizer.load(tiny_tokenizer)
    cfg = ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=48, d_model=32, n_heads=2)
    run = tmp_path / "run"
    save_model_folder(run / "chat_sft", Transformer(cfg, seed=3), tiny_tokenizer, {"stage": "sft"})
    path = tmp_path / "pairs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for color, chosen, rejected in PAIRS:
            f.write(json.dumps({"prompt": f"What is {color}?", "chosen": chosen, "rejected": rejected}) + "\n")
    summary = prefs(run, PrefsConfig(train_files=[path], val_files=[path], epochs=30, batch_size=6, beta=0.5,
                                     rpo_alpha=0.0, muon_lr=0.02, embed_lr=0.02, lr=0.001,
                                     bookkeeping=Bookkeeping(log_every=1)))
    losses = [json.loads(line)["loss"] for line in (run / "prefs" / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at the start: -log sigmoid(0)
    assert losses[-1] < 0.3
    assert summary["after"]["pref_accuracy"] == 1.0 > summary["before"]["pref_accuracy"]
    assert summary["after"]["reward_accuracy"] == 1.0 and summary["after"]["reward_margin"] > 0
    _, _, info = load_model_folder(run / "chat_dpo")
    assert info["stage"] == "dpo"
    with pytest.raises(LlmlabError, match="chat_sft: no such model"):
        prefs(tmp_path / "empty", PrefsConfig(train_files=[path]))


def test_the_default_fine_tuning_data_loads_whole(tmp_path):
    """The generated mixture is in formats the loaders accept, every row (and its text is NFKC-normalised)."""
    from llmlab.tokenizer.conversations import load_sft_file
    from llmlab.data.default_data import default_data_files

    files = default_data_files(tmp_path)
    for name, load in (("sft_train", load_sft_file), ("sft_val", load_sft_file), ("prefs_train", load_preference_file),
                       ("prefs_val", load_preference_file)):
        records, summary = load(files[name])
        assert summary["kept"] == summary["read"] > 100, (name, summary["problems"])
    assert "\u00a0" not in files["sft_train"].read_text(encoding="utf-8")


def test_rpo_term_keeps_chosen_answers_likely(tmp_path, tiny_tokenizer):
    tok = Tokenizer.load(tiny_tokenizer)
    cfg = ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=48, d_model=32, n_heads=2)
    path = tmp_path / "pairs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for color, chosen, rejected in PAIRS:
            f.write(json.dumps({"prompt": f"What is {color}?", "chosen": chosen, "rejected": rejected}) + "\n")
    chosen_logp = {}
    for alpha in (0.0, 1.0):
        run = tmp_path / f"run{alpha}"
        save_model_folder(run / "chat_sft", Transformer(cfg, seed=3), tiny_tokenizer, {"stage": "sft"})
        prefs(run, PrefsConfig(train_files=[path], val_files=[path], epochs=30, batch_size=6, beta=0.5, rpo_alpha=alpha,
                               muon_lr=0.02, embed_lr=0.02, lr=0.001))
        model, tok, _ = load_model_folder(run / "chat_dpo")
        pairs = Conversations(render_pairs(tok, load_preference_file(path)[0]), tok.pad_id)
        chosen_logp[alpha] = float(all_logprobs(model, pairs, "cpu")[0::2].mean())
    assert chosen_logp[1.0] > chosen_logp[0.0] + 1.0  # the NLL term keeps the chosen answers likely


def test_finished_dpo_is_a_no_op_on_resume(sft_run, tmp_path, capsys):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "What is red?", "chosen": "The apple.", "rejected": "The sky."}) + "\n")
    cfg = PrefsConfig(start=sft_run / "base", train_files=[path], epochs=2, batch_size=1)
    prefs(sft_run, cfg)
    again = prefs(sft_run, cfg, resume=True)
    assert again.get("skipped") and "nothing to do" in capsys.readouterr().out
