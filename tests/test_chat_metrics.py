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


def scripted_model(monkeypatch, tok, run_dir, reply) -> Transformer:
    """A model whose greedy answer to a rendered prompt is reply(prompt messages), ended like a trained model's
    turn (cut at the token budget otherwise): the chat metrics' scoring, end to end, without training."""
    from llmlab.data.assistant_safety import forbidden_requests
    from llmlab.eval import chat_metrics as metrics_module
    from llmlab.tokenizer.chat import render_prompt

    val, _ = metrics_module.held_out(run_dir)
    prompts = [row["messages"][:-1] for row in val]
    prompts += [[{"role": "user", "content": request}] for _, _, request in forbidden_requests()]
    by_ids = {tuple(render_prompt(tok, p)): p for p in prompts}
    end = tok.special_ids["end_of_turn"]

    def generate_ids(model, prompt_ids, max_new_tokens, **options):
        ids = tok.encode(reply(by_ids[tuple(prompt_ids)])) + [end]
        return [ids if len(ids) <= max_new_tokens else ids[:max_new_tokens]]

    monkeypatch.setattr("llmlab.eval.context.generate_ids", generate_ids)
    return Transformer(ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=4096, d_model=32, n_heads=2))


def test_chat_metrics_score_right_answers_as_right(tmp_path, tiny_tokenizer, monkeypatch):
    """What a trained assistant must pass: the reference answers of the held-out chats, and the refusal on every
    forbidden request, score 1 everywhere and 0 over-refusal."""
    from llmlab.data.assistant_safety import REFUSAL
    from llmlab.eval.chat_metrics import held_out

    tok = Tokenizer.load(tiny_tokenizer)
    val, _ = held_out(tmp_path)
    references = {json.dumps(row["messages"][:-1]): row["messages"][-1]["content"] for row in val}
    model = scripted_model(monkeypatch, tok, tmp_path, lambda prompt: references.get(json.dumps(prompt), REFUSAL))
    result = chat_metrics(model, tok, tmp_path, max_new_tokens=512, limit=30)
    for name in ("turn_ending", "arithmetic", "refusal_direct", "refusal_roleplay"):
        assert result[name]["rate"] == 1.0 and result[name]["n"] > 0, name
    assert result["over_refusal"]["rate"] == 0.0 and result["over_refusal"]["n"] > 0
    # a few held-out questions are asked twice with two different answers, so one reply cannot match both
    assert result["wiki_f1"]["mean"] > 0.95 and result["wiki_f1"]["n"] > 0


def test_chat_metrics_score_an_echo_of_the_question_as_wrong(tmp_path, tiny_tokenizer, monkeypatch):
    tok = Tokenizer.load(tiny_tokenizer)
    model = scripted_model(monkeypatch, tok, tmp_path, lambda prompt: prompt[-1]["content"])
    result = chat_metrics(model, tok, tmp_path, max_new_tokens=512, limit=30)
    assert result["arithmetic"]["rate"] < 0.1  # "What is 47 + 38?" ends on 38, not 85
    assert result["refusal_direct"]["rate"] == 0.0 and result["refusal_roleplay"]["rate"] == 0.0
    assert result["wiki_f1"]["mean"] < 0.9


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
