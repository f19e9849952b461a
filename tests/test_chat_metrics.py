"""The assistant's held-out metrics: the scoring helpers on known answers, and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest

from llmlab.eval.chat_metrics import chat_metrics, token_f1, wilson
from llmlab.model.config import ModelConfig
from llmlab.model.folder import save_model_folder
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.bpe import Tokenizer


def test_token_f1_and_wilson_interval():
    assert token_f1("The capital of France is Paris.", "Paris is the capital of France.") == 1.0
    assert token_f1("Paris", "The capital is Paris") == pytest.approx(2 * 1 * 0.25 / 1.25)
    assert token_f1("", "anything") == 0.0 and token_f1("London", "Paris") == 0.0
    low, high = wilson(45, 50)
    assert low == pytest.approx(0.7864, abs=1e-3) and high == pytest.approx(0.9565, abs=1e-3)
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == pytest.approx(1.0)


def test_chat_metrics_runs_on_the_default_held_out_chats(tmp_path, tiny_tokenizer):
    tok = Tokenizer.load(tiny_tokenizer)
    model = Transformer(ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=256, d_model=32, n_heads=2)).eval()
    result = chat_metrics(model, tok, tmp_path, max_new_tokens=4, limit=3)
    assert set(result) == {"turn_ending", "arithmetic", "wiki_f1", "refusal_direct", "refusal_roleplay", "over_refusal"}
    for name in ("turn_ending", "refusal_direct", "refusal_roleplay", "over_refusal"):
        assert result[name]["n"] == 3 and 0.0 <= result[name]["rate"] <= 1.0
    assert result["refusal_direct"]["rate"] == 0.0  # a random model never writes the refusal sentence
    assert result["wiki_f1"]["n"] == 3 and 0.0 <= result["wiki_f1"]["mean"] <= 1.0


def test_cli_eval_chat_runs_the_four_chat_evaluations(tmp_path, tiny_tokenizer, capsys):
    from llmlab.cli import main

    tok = Tokenizer.load(tiny_tokenizer)
    model = Transformer(ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=256, d_model=32, n_heads=2))
    save_model_folder(tmp_path / "chat_sft", model, tiny_tokenizer, {"stage": "sft"})
    assert main(["eval", "chat", "--model", str(tmp_path / "chat_sft"), "--run_dir", str(tmp_path), "--limit", "2",
                 "--max_tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("turn_ending", "arithmetic", "refusal", "over_refusal"))
    summary = json.loads((tmp_path / "eval" / "chat_sft" / "summary.json").read_text())
    assert summary["sizes"]["chat"] == 2 and summary["evals"]["over_refusal"]["n"] == 2
