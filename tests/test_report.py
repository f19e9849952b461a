"""The report card: every section from a run directory's files, missing stages shown as not run, self-contained HTML."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import yaml

from llmlab.cli.report import report
from llmlab.report.facts import code_size, git_commit, price_per_hour
from llmlab.report.render import fence, write_report

ZIP_VIEW = {"heldout_bytes": 1000, "heldout_documents": 3, "model_bpb": 1.6,
            "compressors_bpb": {"gzip": 3.0, "bzip2": 2.5, "xz": 2.7, "zstd": 2.75, "brotli": 2.4},
            "best_compressor": "brotli", "model_vs_best_compressor": 1.6 / 2.4, "model_bytes_fp32": 8_000_000,
            "model_bytes_bf16": 4_000_000, "train_text_bytes": 10_000_000, "train_bytes_per_model_byte_fp32": 1.25}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def summary(stage: str, score: float) -> dict:
    """An eval summary.json shaped like llmlab.eval.suite.run_evals writes it."""
    return {"model": f"runs/x/{stage}", "stage": stage, "preset": "quick", "seed": 0, "evals": {
        "knowledge": {"score": score, "ci95": [score - 0.05, score + 0.05], "n": 100, "chance": 0.25,
                      "unit": "accuracy", "seconds": 1.0, "metrics": {}},
        "compression": {"score": 2.0 - score, "ci95": None, "n": 10, "chance": None, "unit": "bits/byte",
                        "seconds": 1.0, "metrics": {}},
        "samples": {"score": None, "ci95": None, "n": 2, "chance": None, "unit": "", "seconds": 1.0, "metrics": {}},
    }}


def make_run(root: Path) -> Path:
    """A run whose pre-training and SFT finished and were evaluated; DPO never ran."""
    run = root / "run"
    (run / "pretrain").mkdir(parents=True)
    config = {"depth": 3, "resolved": {"params": {"total": 2_000_000}, "steps": 30, "tokens": 100_000}}
    (run / "pretrain" / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [{"step": s, "loss": 8.0 - s / 10, "train_time": s} for s in (10, 20, 30)]
    write_jsonl(run / "pretrain" / "metrics.jsonl", rows + [{"step": 30, "val_bpb": 1.6, "train_time": 30.0}])
    (run / "pretrain" / "zip_view.json").write_text(json.dumps(ZIP_VIEW))
    (run / "base").mkdir()
    (run / "base" / "model.json").write_text(json.dumps({"stage": "base", "val_bpb": 1.6}))
    (run / "sft").mkdir()
    (run / "sft" / "config.yaml").write_text(yaml.safe_dump({"epochs": 2.0, "steps": 20}))
    write_jsonl(run / "sft" / "metrics.jsonl", [{"step": 10, "loss": 3.0, "train_time": 5.0},
                                                 {"step": 20, "loss": 2.5, "val_loss": 2.7, "train_time": 9.0}])
    (run / "chat_sft").mkdir()
    (run / "chat_sft" / "model.json").write_text(json.dumps({"stage": "sft"}))
    for folder, score in (("base", 0.3), ("chat_sft", 0.4)):
        (run / "eval" / folder).mkdir(parents=True)
        (run / "eval" / folder / "summary.json").write_text(json.dumps(summary(folder, score)))
        sample = {"prompt": f"Hello {folder} | pipe", "output": "Hi there."}
        write_jsonl(run / "eval" / folder / "samples.jsonl", [sample])
    item = {"prompt": [{"role": "user", "content": "Name the capital of Chad."}], "output": "It is N'Djamena.",
            "greedy_right": True, "samples": ["N'Djamena.", "Paris."], "sample_verdicts": [True, False],
            "sampling": {"temperature": 0.7, "top_k": 50, "samples": 2}}
    write_jsonl(run / "eval" / "chat_sft" / "taught_facts.jsonl", [item])
    return run


def test_report_has_every_section_and_marks_missing_stages(tmp_path, capsys):
    run = make_run(tmp_path)
    report(run_dir=run)
    assert "report/report.md" in capsys.readouterr().out
    md = (run / "report" / "report.md").read_text()
    for title in ("## Environment", "## Stages: time and estimated cost", "## Loss curves", "## Compression",
                  "## Evaluation", "## Samples", "## Stage configs", "## Code size"):
        assert title in md
    assert "| eval (unit) | chance | BASE | SFT | DPO |" in md
    assert "| knowledge (accuracy) | 0.250 | 0.300 [0.250, 0.350] n=100 | 0.400 [0.350, 0.450] n=100 | - |" in md
    assert "| compression (bits/byte) | - | 1.700 n=10 | 1.600 n=10 | - |" in md
    assert "samples (" not in md  # the samples have their own section
    assert "| DPO | not run |" in md and "prefs (config.yaml): not run" in md
    assert "| pre-training | done | 30.0 s (training only) |" in md
    assert "| brotli | 2.400 | 0.667 |" in md and "1.25 training bytes per model byte" in md
    assert "Hello base | pipe" in md  # inside a code block, untouched
    assert "![loss curves](loss_curves.png)" in md
    assert ("[taught_facts] user: Name the capital of Chad.\n-> greedy (right): It is N'Djamena.\n"
            "-> sampled, T=0.7 top-k 50 (right): N'Djamena.\n-> sampled, T=0.7 top-k 50 (wrong): Paris.") in md
    assert (run / "report" / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_self_contained_and_escaped(tmp_path):
    run = make_run(tmp_path)
    _, html_path = write_report(run)
    page = html_path.read_text()
    assert not re.search(r"<(script|link)\b", page) and "http://" not in page and "https://" not in page
    png = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(png) == (run / "report" / "loss_curves.png").read_bytes()
    assert "Hello base | pipe\n-&gt; Hi there." in page  # escaped text, not markup
    assert page.count("<h2>") == 10


def test_report_of_an_empty_run_and_of_a_speedrun_record(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    md_path, _ = write_report(run)
    md = md_path.read_text()
    assert "No training metrics yet." in md and "| pre-training | not run |" in md
    assert "Not run: pre-training writes preeval/zip_view.json" in md
    env = {"cpu": "Test CPU", "logical_cores": 2, "device": "cpu", "processes": 1, "git": None,
           "usd_per_hour": 0.09, "price_basis": "2 vCPUs at $0.045/vCPU-hour"}
    record = {"preset": "tiny", "settings": {"eval_preset": "quick"}, "environment": env, "started": "today",
              "stages": {"data": {"status": "done", "seconds": 7.0, "cost_usd": 7 / 3600 * 0.09},
                         "pretrain": {"status": "done", "attempts": 2, "seconds": 60.0, "cost_usd": 0.0015},
                         "sft": {"status": "failed", "attempts": 1, "error": "RuntimeError: boom"}}}
    (run / "speedrun.json").write_text(json.dumps(record))
    md = write_report(run)[0].read_text()
    assert "Test CPU" in md and "not a git checkout" in md and "this is the machine generating" not in md
    assert "| data + tokenizer | done | 7.0 s | $0.0002 |" in md
    assert "| pre-training | done (2 attempts) | 60.0 s | $0.0015 |" in md
    assert "| SFT | failed | - | - | RuntimeError: boom |" in md
    assert "speedrun preset" in md


def test_facts_helpers(tmp_path):
    assert git_commit(tmp_path) is None  # not inside a checkout: no commit, no error
    assert price_per_hour({"device": "cpu", "logical_cores": 4})[0] > 0
    node = {"device": "cuda", "cuda_devices": ["NVIDIA H100 80GB HBM3"] * 8, "processes": 8}
    assert price_per_hour(node)[0] == 8 * 2.5
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n\n")
    (pkg / "sub" / "b.py").write_text("# c\ny = 2\n")
    assert code_size(pkg) == [{"package": "pkg (top level)", "files": 1, "lines": 2, "non_blank": 1},
                              {"package": "pkg/sub", "files": 1, "lines": 2, "non_blank": 2}]
    assert fence("a ``` b") == "````"
