"""`llmlab think`: the strategies' curves on hand-made attempts (paired, with FLOPs), the verifier's audit, the
whole run on a tiny model writing its results, plots and report section, and resuming a killed run exactly."""

from __future__ import annotations

import json

import pytest

from llmlab.errors import LlmlabError
from llmlab.labs.think.config import ThinkConfig, think_config
from llmlab.labs.think.run import audit, level_curves, pools_of, run_think
from llmlab.model.config import ModelConfig
from llmlab.model.folder import save_model_folder
from llmlab.model.transformer import Transformer


def sample(answer, right, logprob=-1.0, flops=10.0, tokens=5):
    return {"text": f"#### {answer}", "answer": answer, "right": right, "tokens": tokens, "logprob": logprob,
            "flops": flops}


def test_curves_of_hand_made_attempts():
    # problem 0: right answer "7" in 2 of 4 samples, the wrong ones split; the verifier likes the right ones, the
    # model's own likelihood a wrong one
    # problem 1: right once ("3" at the last sample), "5" the majority; the model is most sure of the right one
    rows = [
        {"greedy": sample("1", False, flops=4.0), "scoring_flops": 8.0, "scores": [3.0, -1.0, 2.5, -2.0],
         "samples": [sample("7", True), sample("2", False, logprob=-0.5), sample("7", True), sample("9", False)]},
        {"greedy": sample("3", True, flops=4.0), "scoring_flops": 8.0, "scores": [-1.0, -2.0, -3.0, 0.5],
         "samples": [sample("5", False), sample("5", False), sample("8", False), sample("3", True, logprob=-0.1)]},
    ]
    cfg = ThinkConfig(model="x", samples=4, adaptive_first=1, adaptive_confident=2.0)
    curves = level_curves(rows, cfg)
    by = {name: {p["k"]: p for p in points} for name, points in curves["strategies"].items()}
    assert curves["greedy"]["rate"] == 0.5 and curves["greedy"]["flops"] == 4.0
    assert by["coverage"][1]["rate"] == pytest.approx((2 / 4 + 1 / 4) / 2)  # single samples
    assert by["coverage"][4]["rate"] == 1.0
    assert by["majority"][4]["rate"] == 0.5  # "7" wins problem 0, "5" wins problem 1
    assert by["majority"][2]["rate"] == 0.5  # blocks [7, 2] -> 7 (a tie: the first), [7, 9] -> 7; [5, 5], [8, 3]
    assert by["verifier best-of"][4]["rate"] == 1.0
    assert by["likelihood best-of"][4]["rate"] == 0.5  # "2" for problem 0, "3" for problem 1
    assert by["majority"][4]["flops"] == 40.0 and by["verifier best-of"][4]["flops"] == 4 * (10.0 + 2.0)
    # adaptive: problem 0 stops at 1 sample (log-odds 3.0 >= 2.0), problem 1 doubles to all 4
    assert curves["adaptive"]["mean_samples"] == 2.5 and curves["adaptive"]["rate"] == 1.0
    lo, hi = by["coverage"][1]["ci95"]
    assert lo < by["coverage"][1]["rate"] < hi and by["coverage"][1]["n"] == 2


def test_the_verifier_audit_is_precision_and_recall_against_the_checker():
    pools = pools_of([{"samples": [sample("1", True), sample("2", False), sample("3", True), sample("4", False)]}])
    result = audit(pools, [[1.0, 0.5, -1.0, -2.0]])  # says right to 0 and 1: one of them is right; finds 1 of 2
    assert result["precision"]["rate"] == 0.5 and result["recall"]["rate"] == 0.5
    assert result["accuracy"]["rate"] == 0.5 and result["attempts"] == 4 and result["right"] == 2


@pytest.fixture()
def reasoner(tmp_path, tiny_tokenizer):
    from llmlab.tokenizer.bpe import Tokenizer

    tok = Tokenizer.load(tiny_tokenizer)
    cfg = ModelConfig.from_depth(1, vocab_size=tok.vocab_size, seq_len=128, d_model=32, n_heads=2,
                                 zero_init_proj=False)
    folder = tmp_path / "reasoner"
    save_model_folder(folder, Transformer(cfg, seed=3), tiny_tokenizer, {"stage": "sft"})
    return folder


def tiny_config(model, **values):
    return think_config("quick", {"model": str(model), "task": "addition", "levels": [1], "headline_level": 1,
                                  "problems": 5, "samples": 4, "max_tokens": 8, "coverage_problems": 2,
                                  "coverage_samples": 8, "verifier_problems": 0, "chunk": 2, **values})


def test_a_run_writes_its_results_plots_and_section_and_resumes_exactly(reasoner, tmp_path):
    run_dir = tmp_path / "run"
    cfg = tiny_config(reasoner)
    first = run_think(run_dir, cfg, log=lambda *_: None)
    lab = run_dir / "labs" / "think"
    assert {"config.yaml", "items.jsonl", "results.json", "accuracy.png", "coverage.png", "section.json"} <= {
        p.name for p in lab.iterdir()}
    items = [json.loads(line) for line in (lab / "items.jsonl").read_text().splitlines()]
    assert len(items) == 5 + 2 and all(len(r["samples"]) == (4 if r["group"] == "L1" else 8) for r in items)
    assert all({"prompt", "seed", "settings", "greedy"} <= set(r) for r in items)
    assert first["problems"] == 5 and first["coverage"]["k"] == [1, 2, 4, 8]
    # killed after the first whole line (and half of the next): the resumed run measures the rest identically
    lines = (lab / "items.jsonl").read_text().splitlines(keepends=True)
    (lab / "items.jsonl").write_text(lines[0] + lines[1][:20])
    (lab / "results.json").unlink()
    again = run_think(run_dir, cfg, log=lambda *_: None)
    assert [json.loads(line) for line in (lab / "items.jsonl").read_text().splitlines()] == items
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in first.items() if k != "seconds"}


def test_bad_settings_are_clear_errors(reasoner, tmp_path):
    with pytest.raises(LlmlabError, match="unknown task"):
        run_think(tmp_path, tiny_config(reasoner, task="chess"))
    with pytest.raises(LlmlabError, match="headline_level"):
        tiny_config(reasoner, headline_level=3)
    with pytest.raises(LlmlabError, match="think.model is needed"):
        think_config("quick")
    with pytest.raises(LlmlabError, match="unknown field"):
        think_config("quick", {"model": "m", "strategy": "magic"})
    with pytest.raises(LlmlabError, match="presets are"):
        think_config("huge", {"model": "m"})
