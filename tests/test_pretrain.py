"""Pre-training: the loader, checkpoints, exact resume after SIGKILL, 1-vs-2-process equivalence, bad configs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from llmlab.data.loader import TokenWindows
from llmlab.errors import LlmlabError
from llmlab.files import to_plain
from llmlab.model.config import ModelConfig
from llmlab.model.folder import load_model_folder
from llmlab.model.transformer import Transformer
from llmlab.overrides import with_values
from llmlab.train import checkpoint
from llmlab.train.optim import build_optimizer
from llmlab.train.pretrain import PretrainBookkeeping, PretrainConfig, pretrain
from llmlab.train.settings import Schedule

TINY = dict(depth=1, seq_len=32, batch_size=8, schedule=Schedule(warmup_steps=2),
            bookkeeping=PretrainBookkeeping(eval_every=0, eval_tokens=512, log_every=1),
            model_overrides={"d_model": 32, "n_heads": 2})


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "pretrain" / "metrics.jsonl").read_text().splitlines()]


def fresh_run(tiny_run: Path, tmp_path: Path, name: str = "run") -> Path:
    """A copy of the prepared tiny run without any training outputs."""
    run = tmp_path / name
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("pretrain", "base"))
    return run


# ------------------------------------------------------------------------------------------------- loader


def test_loader_global_batch_is_the_same_for_any_number_of_processes(tiny_run):
    data = TokenWindows(tiny_run / "data" / "tokens", "train", 32)
    whole = data.batch_indices(step=3, batch_size=8)
    halves = data.batch_indices(3, 8, rank=0, world=2) + data.batch_indices(3, 8, rank=1, world=2)
    assert whole == halves and len(set(whole)) == 8
    x, y = data.batch(3, 8)
    assert x.shape == y.shape == (8, 32) and torch.equal(x[:, 1:], y[:, :-1])
    epoch = [i for step in range(data.n_windows // 8) for i in data.batch_indices(step, 8)]
    assert len(set(epoch)) == len(epoch)  # an epoch visits each window at most once
    assert data.batch_indices(3, 8, seed=1) != whole


def test_loader_rejects_shards_from_another_tokenizer(tiny_run):
    with pytest.raises(LlmlabError, match="made with tokenizer"):
        TokenWindows(tiny_run / "data" / "tokens", "train", 32, tokenizer_hash="f" * 64)


# --------------------------------------------------------------------------------------------- checkpoints


def test_checkpoints_keep_last_n_and_fall_back_to_newest_intact(tmp_path, caplog):
    cfg = ModelConfig.from_depth(1, vocab_size=64, seq_len=16, d_model=32, n_heads=2)
    model = Transformer(cfg)
    opt = build_optimizer(model, "adamw", lr=1e-3, weight_decay=0.0)
    for step in (1, 2, 3, 4):
        checkpoint.save_checkpoint(tmp_path, step, model, opt, {"fingerprint": "x"}, keep_last=3)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["step_000002", "step_000003", "step_000004"]
    newest = tmp_path / "step_000004" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    (tmp_path / "step_000003" / "optimizer.pt").unlink()  # missing file
    assert checkpoint.latest_intact(tmp_path) == tmp_path / "step_000002"
    assert "checksum mismatch" in caplog.text and "optimizer.pt: missing" in caplog.text
    with pytest.raises(LlmlabError, match="checksum mismatch"):
        checkpoint.load_checkpoint(tmp_path / "step_000004", model, opt)
    state = checkpoint.load_checkpoint(tmp_path / "step_000002", model, opt)
    assert state["step"] == 2 and state["fingerprint"] == "x"


# ---------------------------------------------------------------------------------------- training runs


def test_pretrain_learns_and_writes_base_model(tiny_run, tmp_path, capsys):
    run = fresh_run(tiny_run, tmp_path)
    summary = pretrain(run, PretrainConfig(**TINY, tokens=8 * 32 * 40))
    rows = [r for r in read_metrics(run) if "loss" in r]
    assert summary["steps"] == 40 and rows[-1]["step"] == 40
    assert np.mean([r["loss"] for r in rows[-5:]]) < rows[0]["loss"] - 1.0
    model, tok, info = load_model_folder(run / "base")
    assert info["stage"] == "base" and model.cfg.d_model == 32 and tok.sha256 == info.get("tokenizer_sha256", tok.sha256)
    view = json.loads((run / "pretrain" / "zip_view.json").read_text())
    assert set(view["compressors_bpb"]) == {"gzip", "bzip2", "xz", "zstd", "brotli"} and view["model_bpb"] > 0
    assert "held-out bits per byte" in capsys.readouterr().out
    with pytest.raises(LlmlabError, match="already holds checkpoints"):
        pretrain(run, PretrainConfig(**TINY, tokens=8 * 32 * 40))
    quieter = with_values(PretrainConfig(**TINY, tokens=8 * 32 * 40), {"bookkeeping": {"log_every": 5}})
    again = pretrain(run, quieter, resume=True)  # bookkeeping is not part of the settings
    assert again.get("skipped") and "already trained" in capsys.readouterr().out  # a finished run is a no-op
    with pytest.raises(LlmlabError, match="other settings"):
        pretrain(run, PretrainConfig(**TINY, tokens=8 * 32 * 40, seed=1), resume=True)


def test_bad_training_configs_fail_before_work(tiny_run, tmp_path):
    run = fresh_run(tiny_run, tmp_path)
    with pytest.raises(LlmlabError, match="micro-batch of 100000"):
        pretrain(run, PretrainConfig(**{**TINY, "batch_size": 100_000, "micro_batch_size": 100_000}))
    with pytest.raises(LlmlabError, match="vocab"):
        pretrain(run, PretrainConfig(**{**TINY, "model_overrides": {**TINY["model_overrides"], "vocab_size": 100}}))
    with pytest.raises(LlmlabError, match="beyond the model's rope table of 16 positions"):
        pretrain(run, PretrainConfig(**{**TINY, "model_overrides": {**TINY["model_overrides"], "seq_len": 16}}))
    with pytest.raises(LlmlabError, match="not divisible by n_heads"):
        pretrain(run, PretrainConfig(**{**TINY, "model_overrides": {"d_model": 30, "n_heads": 4}}))
    with pytest.raises(LlmlabError, match="micro_batch_size 3"):
        pretrain(run, PretrainConfig(**{**TINY, "micro_batch_size": 3}))
    assert not (run / "pretrain" / "checkpoints").exists()


def test_embedding_rate_falls_with_width_when_the_embedding_is_the_head():
    def rates(**kw):
        cfg = PretrainConfig(**kw)
        plan = cfg.resolved(cfg.model_config(4096))
        return plan.lr, plan.embed_lr

    assert rates(depth=3)[1] == pytest.approx(0.05)  # the CPU default's width, 192
    assert rates(depth=12)[1] == pytest.approx(0.0125)  # width 768: 0.05 diverged there (docs/LOG.md)
    assert rates(depth=2)[1] == pytest.approx(0.05)  # never above the measured rate
    assert rates(depth=12, model_overrides={"tie_embeddings": False})[1] == pytest.approx(0.05)  # input-only table
    lr, embed_lr = rates(preset="gpt2-adamw")
    assert (lr, embed_lr) == pytest.approx((1e-3, 0.05))  # the stronger baseline (docs/LOG.md)
    assert rates(depth=12, embed_lr=0.3)[1] == 0.3


def test_gradient_accumulation_matches_the_full_batch(tiny_run, tmp_path):
    full, accum = fresh_run(tiny_run, tmp_path, "full"), fresh_run(tiny_run, tmp_path, "accum")
    pretrain(full, PretrainConfig(**TINY, tokens=8 * 32 * 6))
    pretrain(accum, PretrainConfig(**TINY, micro_batch_size=2, tokens=8 * 32 * 6))
    a = [r["loss"] for r in read_metrics(full) if "loss" in r]
    b = [r["loss"] for r in read_metrics(accum) if "loss" in r]
    assert np.allclose(a, b, rtol=1e-4, atol=1e-5)


def _cli(run: Path, *extra: str) -> list[str]:
    opts = [f"--train.{k}={json.dumps(to_plain(v)) if not isinstance(v, int) else v}" for k, v in TINY.items()]
    return ["--run_dir", str(run), *opts, "--train.tokens", str(8 * 32 * 60), "--train.bookkeeping.checkpoint_every",
            "7", "--train.bookkeeping.keep_checkpoints", "3", *extra]


@pytest.mark.slow
def test_sigkill_and_resume_gives_bit_identical_final_loss(tiny_run, tmp_path):
    ref, killed = fresh_run(tiny_run, tmp_path, "ref"), fresh_run(tiny_run, tmp_path, "killed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same thread count in every run: identical float sums
    cmd = [sys.executable, "-m", "llmlab", "pretrain"]
    subprocess.run(cmd + _cli(ref), check=True, env=env, capture_output=True)
    final_ref = [r for r in read_metrics(ref) if "loss" in r][-1]
    for kill_after_checkpoints in (1, 3):  # kill twice at different points, resuming in between
        proc = subprocess.Popen(cmd + _cli(killed, "--resume", "true"), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while len(checkpoint.list_checkpoints(killed / "pretrain" / "checkpoints")) < kill_after_checkpoints:
            assert proc.poll() is None and time.time() < deadline, "run ended before it could be killed"
            time.sleep(0.05)
        time.sleep(0.3)  # somewhere in the middle of the following steps
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    subprocess.run(cmd + _cli(killed, "--resume", "true"), check=True, env=env, capture_output=True)
    final = [r for r in read_metrics(killed) if "loss" in r][-1]
    assert final["step"] == final_ref["step"] == 60
    assert final["loss"] == final_ref["loss"]  # bit-identical, not approximately equal
    steps = [r["step"] for r in read_metrics(killed) if "loss" in r]
    assert steps == sorted(set(steps))  # the log reads as one run


@pytest.mark.slow
def test_two_processes_follow_the_one_process_loss_curve(tiny_run, tmp_path):
    one, two = fresh_run(tiny_run, tmp_path, "one"), fresh_run(tiny_run, tmp_path, "two")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["pretrain", *_cli(one)[2:]]
    subprocess.run([sys.executable, "-m", "llmlab", *args[:1], "--run_dir", str(one), *args[1:]], check=True, env=env,
                   capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "llmlab"]
    result = subprocess.run(torchrun + [*args[:1], "--run_dir", str(two), *args[1:]], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    a = [r["loss"] for r in read_metrics(one) if "loss" in r]
    b = [r["loss"] for r in read_metrics(two) if "loss" in r]
    assert len(a) == len(b) == 60
    assert np.allclose(a, b, rtol=1e-4, atol=1e-4)
