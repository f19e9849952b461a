"""`llmlab speedrun`: every stage on a tiny run, finished stages skipped on re-runs, a crashed or killed run
continuing where it stopped, the report regenerated. The evaluation suite is replaced by a fake that writes
summary.json files of the agreed shape (its own tests are the suite's)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml

from llmlab.data.prepare import PrepareConfig
from llmlab.errors import LlmlabError
from llmlab.pipeline.speedrun import TrainOverrides, resolve_settings, speedrun
from llmlab.train import checkpoint
from llmlab.train.sft import SFTConfig

TINY_TRAIN = dict(depth=1, seq_len=48, batch_size=8, schedule={"warmup_steps": 2},
                  bookkeeping={"eval_every": 0, "eval_tokens": 512, "log_every": 1, "checkpoint_every": 4},
                  model_overrides={"d_model": 32, "n_heads": 2}, tokens=8 * 48 * 12)
FACTS = [("red", "apple"), ("green", "grass"), ("blue", "sky"), ("white", "snow")]


class FakeEvals:
    """Stands in for llmlab.eval.suite.run_evals; records calls and can fail once on a given model."""

    def __init__(self, fail_on: str | None = None):
        self.calls, self.fail_on = [], fail_on

    def __call__(self, model_dir, out_dir, *, run_dir=None, names=None, preset="quick", seed=0):
        self.calls.append(Path(model_dir).name)
        self.names = names
        if Path(model_dir).name == self.fail_on:
            self.fail_on = None
            raise RuntimeError("simulated crash in eval")
        summary = {"model": str(model_dir), "stage": Path(model_dir).name, "preset": preset, "seed": seed,
                   "evals": {"knowledge": {"score": 0.5, "ci95": [0.4, 0.6], "n": 10, "chance": 0.25,
                                           "unit": "accuracy", "seconds": 0.1, "metrics": {}}}}
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "summary.json").write_text(json.dumps(summary))
        sample = {"prompt": "What is red?", "output": "The apple."}
        (Path(out_dir) / "samples.jsonl").write_text(json.dumps(sample) + "\n")
        return summary


def use_evals(monkeypatch, fake: FakeEvals) -> None:
    monkeypatch.setitem(sys.modules, "llmlab.eval.suite", types.SimpleNamespace(run_evals=fake))


@pytest.fixture()
def tiny_speedrun(tiny_run, tmp_path) -> tuple[Path, dict]:
    """(a fresh run directory holding the tiny run's tokenizer and data, the speedrun options for it)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    chats, pairs = tmp_path / "chats.jsonl", tmp_path / "pairs.jsonl"
    chats.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"What is {c}?"},
                                                       {"role": "assistant", "content": f"The {t}."}]}) + "\n"
                             for c, t in FACTS))
    pairs.write_text("".join(json.dumps({"prompt": f"What is {c}?", "chosen": f"The {t}.", "rejected": "No."}) + "\n"
                             for c, t in FACTS))
    data = yaml.safe_load((run / "data" / "prepare_config.yaml").read_text())
    options = dict(preset="tiny", data=PrepareConfig(sources=data["sources"], workers=1), train=TINY_TRAIN,
                   sft={"train_files": [chats], "val_files": [chats], "batch_size": 4, "epochs": 2},
                   prefs={"train_files": [pairs], "val_files": [pairs], "batch_size": 4, "epochs": 1})
    return run, options


def mtimes(run: Path) -> dict:
    files = ["data/tokens/manifest.json", "pretrain/metrics.jsonl", "base/model.safetensors", "sft/metrics.jsonl",
             "chat_sft/model.safetensors", "prefs/metrics.jsonl", "chat_dpo/model.safetensors",
             "eval/base/summary.json", "eval/chat_dpo/summary.json"]
    return {f: (run / f).stat().st_mtime_ns for f in files}


@pytest.mark.slow  # four speedruns of a tiny model: 20 s measured on the busy 2-core dev machine
def test_crash_resume_and_skipping_finished_stages(tiny_speedrun, monkeypatch, capsys):
    run, options = tiny_speedrun
    from llmlab.train import sft as sft_module

    real_sft = sft_module.sft

    def crashing_sft(*args, **kwargs):
        raise RuntimeError("simulated crash in sft")

    monkeypatch.setattr(sft_module, "sft", crashing_sft)
    use_evals(monkeypatch, FakeEvals())
    with pytest.raises(RuntimeError, match="simulated crash in sft"):
        speedrun(run, **options)
    state = json.loads((run / "speedrun.json").read_text())
    assert [state["stages"][s]["status"] for s in ("data", "pretrain", "sft")] == ["done", "done", "failed"]
    assert "simulated crash in sft" in state["stages"]["sft"]["error"] and "prefs" not in state["stages"]
    pretrain_time = state["stages"]["pretrain"]["seconds"]

    # second run: SFT, DPO, eval, report; data and pre-training found finished; eval crashes on chat_sft
    monkeypatch.setattr(sft_module, "sft", real_sft)
    evals = FakeEvals(fail_on="chat_sft")
    use_evals(monkeypatch, evals)
    before = (run / "pretrain" / "metrics.jsonl").stat().st_mtime_ns
    with pytest.raises(RuntimeError, match="simulated crash in eval"):
        speedrun(run, **options)
    assert (run / "pretrain" / "metrics.jsonl").stat().st_mtime_ns == before
    state = json.loads((run / "speedrun.json").read_text())
    assert state["stages"]["pretrain"]["seconds"] == pretrain_time and "checked" in state["stages"]["pretrain"]
    assert state["stages"]["sft"]["status"] == state["stages"]["prefs"]["status"] == "done"
    assert state["stages"]["eval"]["status"] == "failed" and evals.calls == ["base", "chat_sft"]

    # third run: only the two models left are evaluated, then the report
    speedrun(run, **options)
    assert evals.calls == ["base", "chat_sft", "chat_sft", "chat_dpo"]
    out = capsys.readouterr().out
    assert f"report: {run / 'report' / 'report.md'}" in out and f"llmlab chat --model {run / 'chat_dpo'}" in out
    report = (run / "report" / "report.md").read_text()
    assert "| knowledge (accuracy) | 0.250 | 0.500 [0.400, 0.600] n=10 | 0.500 [0.400, 0.600] n=10 | 0.500" in report
    assert "| DPO | done |" in report and "speedrun preset" in report

    # fourth run: nothing to do anywhere; the report is written again
    stamps, report_stamp = mtimes(run), (run / "report" / "report.md").stat().st_mtime_ns
    speedrun(run, **options)
    assert mtimes(run) == stamps and len(evals.calls) == 4
    assert (run / "report" / "report.md").stat().st_mtime_ns > report_stamp
    state = json.loads((run / "speedrun.json").read_text())
    assert all(state["stages"][s]["status"] == "done" for s in ("data", "pretrain", "sft", "prefs", "eval", "report"))
    assert all("checked" in state["stages"][s] for s in ("data", "pretrain", "sft", "prefs", "eval"))
    assert state["stages"]["pretrain"]["attempts"] == state["stages"]["prefs"]["attempts"] == 1
    assert state["stages"]["sft"]["attempts"] == state["stages"]["eval"]["attempts"] == 2


def test_settings_follow_preset_then_depth_then_overrides():
    s = resolve_settings("tiny", None, None, {"epochs": 3}, None)
    assert s.train.depth == 2 and s.train.tokens == 300_000 and s.sft.epochs == 3 and s.prefs.epochs == 0.5
    assert s.train.bookkeeping.checkpoint_every == 25 and s.train.bookkeeping.log_every == 10  # the rest: defaults
    s = resolve_settings("tiny", 4, TrainOverrides(tokens=1000))
    assert s.train.depth == 4 and s.train.tokens == 1000 and s.train.bookkeeping.checkpoint_every == 25
    typed = TrainOverrides(seed=3)
    typed.bookkeeping.log_every = 2  # a nested field set alone keeps the preset's other nested values
    s = resolve_settings("tiny", None, typed)
    assert (s.train.seed, s.train.bookkeeping.log_every, s.train.bookkeeping.checkpoint_every) == (3, 2, 25)
    with pytest.raises(LlmlabError, match="--train: unknown field.*tokns"):
        resolve_settings("default", None, {"tokns": 5}, None, None)
    with pytest.raises(LlmlabError, match="--preset 'huge'"):
        resolve_settings("huge", None, None, None, None)


def test_the_smollm2_preset_starts_from_the_packaged_model_with_lora():
    s = resolve_settings("smollm2")
    assert s.start == "smollm2" and s.sft.lora_rank == s.prefs.lora_rank == 16 and s.sft.lr < SFTConfig().lr
    assert resolve_settings("default").start is None
    with pytest.raises(LlmlabError, match="--depth: preset smollm2 imports smollm2"):
        resolve_settings("smollm2", depth=4)


@pytest.mark.slow  # two speedruns (SFT and DPO of a tiny imported model): ~10 s
def test_a_start_preset_imports_its_model_instead_of_pretraining(tiny_speedrun, monkeypatch, tmp_path, capsys):
    from llmlab.model.gguf_format import write_gguf
    from llmlab.pipeline import speedrun as speedrun_module
    from llmlab.tokenizer.bpe import Tokenizer
    from test_hf_format import random_model

    run, options = tiny_speedrun
    gguf = tmp_path / "tiny.gguf"
    write_gguf(random_model("llama", d_model=32, n_heads=2, n_kv_heads=1), Tokenizer.load(run / "tokenizer"), gguf)
    monkeypatch.setitem(speedrun_module.PRESETS, "imported", {"start": str(gguf), "train": {}, "sft": {}, "prefs": {},
                                                               "evals": ["knowledge"]})
    monkeypatch.setenv("LLMLAB_CACHE", str(tmp_path / "cache"))
    evals = FakeEvals()
    use_evals(monkeypatch, evals)
    options = {**options, "preset": "imported", "train": None}
    speedrun(run, **options)
    base = json.loads((run / "base" / "model.json").read_text())
    assert base["stage"] == "imported" and base["source"] == str(gguf)
    assert not (run / "pretrain").exists()  # nothing was pre-trained
    assert evals.calls == ["base", "chat_sft", "chat_dpo"] and evals.names == ["knowledge"]  # the preset's evals
    assert "imported" in capsys.readouterr().out
    state = json.loads((run / "speedrun.json").read_text())
    assert all(state["stages"][s]["status"] == "done" for s in ("data", "pretrain", "sft", "prefs", "eval", "report"))
    sft_config = yaml.safe_load((run / "sft" / "config.yaml").read_text())
    assert sft_config["steps"] == 2  # 4 chats, 2 epochs, batches of 4: trained from the imported base
    assert f"none: {gguf} imported as the base (2 layers" in (run / "report" / "report.md").read_text()

    stamp = (run / "base" / "model.safetensors").stat().st_mtime_ns
    speedrun(run, **options)
    assert (run / "base" / "model.safetensors").stat().st_mtime_ns == stamp
    assert "imported before; nothing to do" in capsys.readouterr().out


@pytest.mark.slow
def test_killed_speedrun_continues_pretraining_from_its_checkpoint(tiny_speedrun, monkeypatch, tmp_path):
    run, options = tiny_speedrun
    options["train"] = {**TINY_TRAIN, "tokens": 8 * 48 * 200,
                        "bookkeeping": {**TINY_TRAIN["bookkeeping"], "checkpoint_every": 20}}
    config = tmp_path / "speedrun.yaml"
    stage_options = {k: json.loads(json.dumps(options[k], default=str)) for k in ("train", "sft", "prefs")}
    data = {"sources": options["data"].sources, "workers": 1}
    config.write_text(yaml.safe_dump({"run_dir": str(run), "preset": "tiny", "data": data, **stage_options}))
    proc = subprocess.Popen([sys.executable, "-m", "llmlab", "speedrun", "--config", str(config)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not checkpoint.list_checkpoints(run / "pretrain" / "checkpoints"):
        assert proc.poll() is None and time.time() < deadline, "the speedrun ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((run / "speedrun.json").read_text())
    assert state["stages"]["pretrain"]["status"] == "running"  # killed: no chance to record anything else
    killed_at = max(json.loads(line)["step"] for line in (run / "pretrain" / "metrics.jsonl").read_text().splitlines())
    assert killed_at < 200

    use_evals(monkeypatch, FakeEvals())
    speedrun(run, **options)
    steps = [json.loads(line)["step"] for line in (run / "pretrain" / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == list(range(1, 201))  # resumed, not restarted: the log reads as one run
    state = json.loads((run / "speedrun.json").read_text())
    assert state["stages"]["pretrain"]["attempts"] == 2 and state["stages"]["report"]["status"] == "done"
DRIVER = '''
import sys, types, json
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_speedrun import FakeEvals
sys.modules["llmlab.eval.suite"] = types.SimpleNamespace(run_evals=FakeEvals())
from llmlab.data.prepare import PrepareConfig
from llmlab.pipeline.speedrun import speedrun
options = json.loads(Path(sys.argv[2]).read_text())
speedrun(Path(sys.argv[1]), preset="tiny", data=PrepareConfig(**options.pop("data")), **options)
'''


@pytest.mark.slow
def test_speedrun_under_torchrun_trains_on_two_processes(tiny_speedrun, tmp_path):
    run, options = tiny_speedrun
    driver, opts = tmp_path / "driver.py", tmp_path / "options.json"
    driver.write_text(DRIVER.format(tests=str(Path(__file__).parent)))
    plain = {"data": {"sources": options["data"].sources, "workers": 1},
             **{k: json.loads(json.dumps(options[k], default=str)) for k in ("train", "sft", "prefs")}}
    opts.write_text(json.dumps(plain))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(torchrun + [str(driver), str(run), str(opts)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((run / "speedrun.json").read_text())
    assert all(state["stages"][s]["status"] == "done" for s in ("data", "pretrain", "sft", "prefs", "eval", "report"))
    assert state["environment"]["processes"] == 2
    assert yaml.safe_load((run / "pretrain" / "config.yaml").read_text())["world"] == 2
    assert (run / "report" / "report.html").exists()
