"""The assistant's held-out metrics: the scoring helpers on known answers, scripted answers scored through the sampled
and greedy paths, and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest

from llmlab.eval import chat_metrics as cm
from llmlab.eval.context import EvalContext
from llmlab.eval.scoring import token_f1, wilson
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


def scripted_model(scripted_replies, tok, run_dir, reply) -> Transformer:
    """A model whose every answer to a rendered prompt is reply(prompt messages), ended like a trained model's turn
    (cut at the token budget otherwise): the chat metrics' scoring, end to end, without training."""
    from llmlab.data.assistant_safety import forbidden_requests
    from llmlab.eval import chat_metrics as metrics_module
    from llmlab.tokenizer.chat import render_prompt

    val, _ = metrics_module.held_out(run_dir)
    prompts = [row["messages"][:-1] for row in val]
    prompts += [[{"role": "user", "content": request}] for _, _, request in forbidden_requests()]
    by_ids = {tuple(render_prompt(tok, p)): p for p in prompts}
    scripted_replies(tok, lambda ids: reply(by_ids[ids]))
    return Transformer(ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=4096, d_model=32, n_heads=2))


def run_chat_evals(model, tok, run_dir, max_new_tokens: int) -> dict:
    """Each chat evaluation on the scripted model: {name: (result, the items it recorded)}."""
    out = {}
    for name in cm.CHAT_EVALS:
        ctx = EvalContext(model, tok, {"stage": "sft"}, run_dir, run_dir, seed=0, preset="quick",
                          sizes={"chat": 30, "chat_max_tokens": max_new_tokens})
        out[name] = (getattr(cm, name)(ctx), ctx.items)
    return out


def test_chat_metrics_score_right_answers_as_right(tmp_path, tiny_tokenizer, scripted_replies):
    """What a trained assistant must pass: the reference answers of the held-out chats, and the refusal on every
    forbidden request, score 1 everywhere (sampled and greedy) and 0 over-refusal."""
    from llmlab.data.assistant_safety import REFUSAL

    tok = Tokenizer.load(tiny_tokenizer)
    val, _ = cm.held_out(tmp_path)
    references = {json.dumps(row["messages"][:-1]): row["messages"][-1]["content"] for row in val}
    model = scripted_model(scripted_replies, tok, tmp_path, lambda prompt: references.get(json.dumps(prompt), REFUSAL))
    results = run_chat_evals(model, tok, tmp_path, max_new_tokens=512)
    for name in ("turn_ending", "arithmetic", "refusal"):
        result, items = results[name]
        assert result["score"] == 1.0 and result["metrics"]["greedy"] == 1.0 and result["n"] > 0, name
        assert len(items[0]["samples"]) == 8 and all(items[0]["sample_verdicts"]), name
    assert results["refusal"][0]["metrics"]["direct_n"] > 0 and results["refusal"][0]["metrics"]["roleplay"] == 1.0
    assert results["over_refusal"][0]["score"] == 0.0 and results["over_refusal"][0]["n"] > 0


def test_chat_metrics_score_an_echo_of_the_question_as_wrong(tmp_path, tiny_tokenizer, scripted_replies):
    tok = Tokenizer.load(tiny_tokenizer)
    model = scripted_model(scripted_replies, tok, tmp_path, lambda prompt: prompt[-1]["content"])
    results = run_chat_evals(model, tok, tmp_path, max_new_tokens=512)
    assert results["arithmetic"][0]["score"] < 0.1  # "What is 47 + 38?" ends on 38, not 85
    assert results["refusal"][0]["metrics"]["direct"] == 0.0 and results["refusal"][0]["metrics"]["roleplay"] == 0.0


def test_a_turn_cut_at_the_token_budget_is_not_ended(tmp_path, tiny_tokenizer, scripted_replies):
    tok = Tokenizer.load(tiny_tokenizer)
    model = scripted_model(scripted_replies, tok, tmp_path, lambda prompt: "word " * 40)
    result, items = run_chat_evals(model, tok, tmp_path, max_new_tokens=8)["turn_ending"]
    assert result["score"] == 0.0 and result["metrics"]["greedy"] == 0.0 and not any(items[0]["sample_verdicts"])


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
