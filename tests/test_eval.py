"""The evaluation suite: each metric on tiny fixtures with known answers, the registry, run_evals' files, the CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from llmlab.eval.gsm8k import extract_answer, load_gsm8k
from llmlab.eval.loglik import continuation_logprobs, pick_choice
from llmlab.eval.mmlu import load_mmlu, mmlu_prompt, stratified_sample
from llmlab.eval.registry import evals
from llmlab.eval.scoring import mean_ci, rate_ci, ratio_bootstrap_ci
from llmlab.eval.suite import run_evals
from llmlab.model.config import ModelConfig
from llmlab.model.folder import save_model_folder
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.bpe import Tokenizer


class FixedModel(nn.Module):
    """A "model" whose next-token distribution is the same everywhere: softmax(logits); counts its forward passes."""

    def __init__(self, logits: list[float], seq_len: int = 16):
        super().__init__()
        self.cfg = ModelConfig.from_depth(1, vocab_size=len(logits), seq_len=seq_len, d_model=8, n_heads=1)
        self.embed = nn.Embedding(len(logits), 1)
        self.logits = torch.tensor(logits)
        self.calls = 0

    def forward(self, idx):
        self.calls += 1
        return self.logits.expand(*idx.shape, -1), None


def tiny_model(tok: Tokenizer, seq_len: int = 64) -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=seq_len, d_model=32, n_heads=2)
    return Transformer(cfg).eval()


def test_the_multiple_choice_scorer_picks_the_highest_log_likelihood():
    logp = torch.tensor([0.1, 0.2, 0.6, 0.1]).log()
    model = FixedModel(logp.tolist())
    best, scores = pick_choice(model, [0, 1], [[1], [2], [3]])
    assert best == 1 and scores == pytest.approx([logp[1].item(), logp[2].item(), logp[3].item()], abs=1e-6)
    assert model.calls == 1  # single-token choices share one forward pass
    two = continuation_logprobs(model, [([0], [2, 2]), ([0, 0, 0], [3, 1, 2])])
    assert two == pytest.approx([2 * logp[2].item(), (logp[3] + logp[1] + logp[2]).item()], abs=1e-5)


def test_continuation_logprobs_matches_a_full_forward_whatever_the_batching(tiny_tokenizer):
    tok = Tokenizer.load(tiny_tokenizer)
    model = tiny_model(tok, seq_len=16)
    pairs = [([0, *tok.encode("the river")], tok.encode(" city")), ([0, 5, 9], [7]),
             ([0, *tok.encode("a king and a queen of the old house by the road")], tok.encode(" war peace"))]
    for batch_size in (1, 3):
        got = continuation_logprobs(model, pairs, batch_size=batch_size)
        for (context, cont), value in zip(pairs, got):
            full = [*context, *cont][-17:]  # longer than the context: the last seq_len inputs are kept
            with torch.no_grad():
                logp = model(torch.tensor([full[:-1]]))[0][0].log_softmax(-1)
            expected = sum(logp[len(full) - len(cont) - 1 + i, t].item() for i, t in enumerate(cont))
            assert value == pytest.approx(expected, abs=1e-4)


def test_scoring_intervals():
    assert rate_ci([True] * 45 + [False] * 5)[1] == pytest.approx([0.7864, 0.9565], abs=1e-3)
    mean, ci = mean_ci([0.0, 1.0] * 50)
    assert mean == 0.5 and ci == pytest.approx([0.5 - 1.96 * 0.50252 / 10, 0.5 + 1.96 * 0.50252 / 10], abs=1e-4)
    value, ci = ratio_bootstrap_ci([10, 20, 30], [10, 10, 10], seed=0)
    assert value == 2.0 and 1.0 <= ci[0] < 2.0 < ci[1] <= 3.0
    assert ratio_bootstrap_ci([10, 20, 30], [10, 10, 10], seed=0) == (value, ci)  # seeded


@pytest.mark.parametrize("text,expected", [
    ("He has 3 + 4 = 7 apples.\n#### 7", 7), ("The answer is 1,234.", 1234), ("It drops to -5 degrees", -5),
    ("#### 12\nQuestion: 99", 12), ("She pays $29.50 in all", 29.5), ("no number here", None),
])
def test_gsm8k_answer_extraction(text, expected):
    assert extract_answer(text) == expected


def test_packaged_benchmarks_load_whole():
    rows = load_mmlu()
    assert len(rows) == 14042 and len({r["topic"] for r in rows}) == 57  # the 2 stray header rows are gone
    picked = stratified_sample(rows, 114, seed=0)
    assert len(picked) == 114 and len({rows[i]["topic"] for i in picked}) == 57
    assert picked == stratified_sample(rows, 114, seed=0) != stratified_sample(rows, 114, seed=1)
    gsm = load_gsm8k()
    assert len(gsm) == 1319 and gsm[0]["target"] == 18 and sum(r["target"] < 0 for r in gsm) == 2


def test_mmlu_prompt_keeps_only_the_exemplars_that_fit(tiny_tokenizer):
    tok = Tokenizer.load(tiny_tokenizer)
    rows = [{"question": f"Q{i}?", "answer_a": "x", "answer_b": "y", "answer_c": "z", "answer_d": "w",
             "correct_answer": "B", "topic": "t"} for i in range(6)]
    ids, used = mmlu_prompt(tok, rows, 0, [1, 2, 3, 4, 5], max_len=10_000)
    text = tok.decode(ids)
    assert used == 5 and text.count("Answer: B") == 5 and text.endswith("Q0?\nA. x\nB. y\nC. z\nD. w\nAnswer:")
    one_shot = len(mmlu_prompt(tok, rows, 0, [1], max_len=10_000)[0])
    assert mmlu_prompt(tok, rows, 0, [1, 2, 3, 4, 5], max_len=one_shot)[1] == 1


def test_registry_lists_every_evaluation():
    registry = evals()
    chat = ["turn_ending", "arithmetic", "refusal", "over_refusal", "taught_facts", "knowledge_transfer", "multiturn",
            "identity"]
    assert list(registry) == ["compression", "knowledge", "mmlu", "gsm8k", *chat, "samples"]
    assert all(registry[n].models == ("chat",) for n in chat)


@pytest.fixture()
def eval_run(tmp_path, tiny_run) -> Path:
    """A copy of the tiny run with two reserved and two val Wikipedia titles, and a tiny base model in it."""
    from llmlab.data.assistant_sources import wiki_titles
    from llmlab.data.split import is_reserved_title
    from llmlab.data.corpus import wiki_articles

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    reserved = sorted(t for t in wiki_articles() if is_reserved_title(t))[:2]
    (run / "data" / "titles.json").write_text(json.dumps({"train": reserved, "val": wiki_titles("val")[:2],
                                                          "reserved": reserved}))
    tok = Tokenizer.load(run / "tokenizer")
    save_model_folder(run / "base", tiny_model(tok), run / "tokenizer", {"stage": "base"})
    return run


SMALL = {"mmlu": 3, "gsm8k": 2, "knowledge": 2, "chat": 2, "chat_max_tokens": 4, "gsm8k_max_tokens": 4}


def test_run_evals_writes_the_contract_files_and_is_deterministic(eval_run, tmp_path):
    names = ["compression", "knowledge", "mmlu", "gsm8k", "samples"]
    first = run_evals(eval_run / "base", tmp_path / "a", names=names, seed=3, sizes=SMALL)
    assert first["stage"] == "base" and first["seed"] == 3 and list(first["evals"]) == names
    for name, result in first["evals"].items():
        assert {"score", "ci95", "n", "chance", "unit", "seconds", "metrics"} <= result.keys()
        lines = (tmp_path / "a" / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) >= result["n"] > 0
        assert all({"prompt", "output", "score", "seed", "decoding"} <= json.loads(line).keys() for line in lines)
    assert first["evals"]["mmlu"]["chance"] == 0.25 and first["evals"]["mmlu"]["n"] == 3
    assert first["evals"]["knowledge"]["n"] == 2 and first["evals"]["knowledge"]["metrics"]["val_n"] == 2
    assert len(first["evals"]["samples"]["samples"]) == 4
    saved = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert saved["evals"].keys() == first["evals"].keys() and saved["model"] == str(eval_run / "base")
    run_evals(eval_run / "base", tmp_path / "b", names=names, seed=3, sizes=SMALL)
    for name in names:
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (tmp_path / "b" / f"{name}.jsonl").read_bytes()


def test_a_uniform_model_has_the_computable_bits_per_byte(eval_run, tmp_path):
    from llmlab.data.store import iter_clean_docs

    tok = Tokenizer.load(eval_run / "tokenizer")
    model = tiny_model(tok)
    with torch.no_grad():
        getattr(model, "lm_head", model.embed).weight.zero_()  # (the output matrix) every logit 0: p = 1/V
    save_model_folder(eval_run / "uniform", model, eval_run / "tokenizer", {"stage": "base"})
    result = run_evals(eval_run / "uniform", tmp_path / "u", names=["compression"])["evals"]["compression"]
    texts = [d["text"] for d in iter_clean_docs(eval_run, "val")]
    n_tokens = sum(len(tok.encode(t)) for t in texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    assert result["score"] == pytest.approx(math.log2(tok.vocab_size) * n_tokens / n_bytes, rel=1e-5)
    assert result["metrics"]["stream_bpb"] == pytest.approx(result["score"], rel=1e-5)  # context cannot help
    assert result["ci95"][0] <= result["score"] <= result["ci95"][1] and result["n"] == len(texts)
    assert {"gzip_bpb", "bzip2_bpb", "xz_bpb", "zstd_bpb", "brotli_bpb"} <= result["metrics"].keys()


def test_chat_evals_skip_base_models_and_run_on_chat_models(eval_run, tmp_path):
    tok = Tokenizer.load(eval_run / "tokenizer")
    save_model_folder(eval_run / "chat_sft", tiny_model(tok, seq_len=256), eval_run / "tokenizer", {"stage": "sft"})
    from llmlab.errors import LlmlabError

    with pytest.raises(LlmlabError, match="stage is 'base'"):
        run_evals(eval_run / "base", tmp_path / "x", names=["refusal"])
    summary = run_evals(eval_run / "chat_sft", tmp_path / "c", names=["turn_ending", "arithmetic", "refusal",
                                                                      "over_refusal", "samples"], sizes=SMALL)
    for name in ("turn_ending", "refusal", "over_refusal"):
        assert 0 < summary["evals"][name]["n"] <= 4 and 0.0 <= summary["evals"][name]["score"] <= 1.0
    assert summary["evals"]["refusal"]["score"] == 0.0  # a random model never writes the refusal sentence
    assert summary["evals"]["samples"]["samples"][0]["prompt"] == "What is the capital of France?"


def test_missing_run_dir_is_a_clear_error(tmp_path, tiny_tokenizer):
    from llmlab.errors import LlmlabError

    tok = Tokenizer.load(tiny_tokenizer)
    save_model_folder(tmp_path / "m", tiny_model(tok), tiny_tokenizer, {"stage": "base"})
    with pytest.raises(LlmlabError, match="--run_dir"):
        run_evals(tmp_path / "m", tmp_path / "out", names=["compression"])
    with pytest.raises(LlmlabError, match="unknown evaluation"):
        run_evals(tmp_path / "m", tmp_path / "out", names=["nope"])


def test_cli_eval_run_prints_a_table_and_saves_the_summary(eval_run, capsys):
    from llmlab.cli import main

    code = main(["eval", "run", "--model", str(eval_run / "base"), "--evals", "[mmlu,samples]", "--sizes", "{mmlu: 2}"])
    assert code == 0
    out = capsys.readouterr().out
    assert "mmlu" in out and "0.250" in out  # the chance column
    summary = json.loads((eval_run / "eval" / "base" / "summary.json").read_text())
    assert summary["evals"]["mmlu"]["n"] == 2 and np.isfinite(summary["evals"]["mmlu"]["score"])


def test_content_f1_leaves_out_function_words_and_the_question():
    from llmlab.eval.scoring import STOPWORDS, token_f1

    reference = "Euphorbiaceae, the spurge family, is a large family of flowering plants."
    babble = "Euphorbiaceae is a group of the family of the family of the Americas."
    ignore = STOPWORDS | {"what", "is", "euphorbiaceae"}
    assert token_f1(babble, reference) > 0.3  # plain F1 rewards the shape of an answer
    # content words: babble {group, family x2, americas}, reference {spurge, family x2, large, flowering, plants}
    assert token_f1(babble, reference, ignore=ignore) == pytest.approx(2 * (2 / 4) * (2 / 6) / (2 / 4 + 2 / 6))
    assert token_f1("A spurge family of flowering plants", reference, ignore=ignore) == pytest.approx(0.8)  # 4/4, 4/6


def test_a_later_run_with_the_same_settings_adds_to_the_summary(eval_run, tmp_path):
    run_evals(eval_run / "base", tmp_path / "s", names=["samples"], sizes=SMALL)
    assert list(run_evals(eval_run / "base", tmp_path / "s", names=["mmlu"], sizes=SMALL)["evals"]) == ["samples", "mmlu"]
    other = run_evals(eval_run / "base", tmp_path / "s", names=["mmlu"], sizes={**SMALL, "mmlu": 2})
    assert list(other["evals"]) == ["mmlu"]  # other settings: a fresh summary
