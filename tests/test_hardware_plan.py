"""Tests for llmlab.hardware (matmul probe, accelerator table) and llmlab.train.plan / `llmlab plan` (the planner).

    .venv/bin/pytest tests/test_hardware_plan.py     # a few seconds: the probes are tiny or stubbed
"""

from __future__ import annotations

import json
import math

import pytest

from llmlab import hardware
from llmlab.cli.plan import plan as plan_command
from llmlab.pipeline.speedrun import PRESETS, TrainOverrides, resolve_settings
from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig
from llmlab.model.flops import flops_per_token
from llmlab.train.plan import (
    Hardware,
    closest_depth,
    compute_optimal,
    format_dollars,
    format_duration,
    make_plan,
    resolve_hardware,
    scaling_params,
)

LLAMA2_70B = dict(d_model=8192, n_heads=64, n_kv_heads=8, mlp_hidden=28672)


@pytest.fixture
def fast_cpu_probe(monkeypatch):
    """Make the CPU 'probe' instant and known: 100 GFLOP/s."""
    hardware._probed_peak.cache_clear()
    monkeypatch.setattr(hardware, "measure_gemm_peak", lambda *args, **kwargs: 100e9)
    yield
    hardware._probed_peak.cache_clear()


def test_probe_returns_positive_finite_flops():
    flops = hardware.measure_gemm_peak("cpu", size=64, seconds=0.02)
    assert math.isfinite(flops) and flops > 0


@pytest.mark.parametrize(("size", "seconds"), [(0, 1.0), (64, 0.0), (64, -1.0)])
def test_probe_rejects_bad_arguments(size, seconds):
    with pytest.raises(LlmlabError, match="matmul probe"):
        hardware.measure_gemm_peak("cpu", size=size, seconds=seconds)


@pytest.mark.parametrize(
    ("device_name", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA GeForce RTX 4090", "RTX 4090"),
        ("Tesla V100-SXM2-16GB", "V100"),
        ("AMD Instinct MI300X", "MI300X"),
        ("h100", "H100 SXM"),
    ],
)
def test_accelerator_lookup_by_substring(device_name, expected):
    assert hardware.find_accelerator(device_name).name == expected


def test_gpu_peak_flops_table():
    assert hardware.gpu_peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert hardware.gpu_peak_flops("NVIDIA A100-SXM4-40GB") == 312e12
    assert hardware.gpu_peak_flops("NVIDIA L40") is None  # "l4" must not match a longer model number
    assert hardware.gpu_peak_flops("Some Future GPU") is None


def test_peak_flops_on_cpu_is_probed_once(fast_cpu_probe):
    assert hardware.peak_flops("cpu") == hardware.peak_flops("cpu")
    peak, source = hardware.peak_flops("cpu")
    assert peak == 100e9 and "measured" in source


def test_cuda_hardware_reads_the_table(monkeypatch):
    """`--hardware cuda` on an H100 machine, without one: the device name is all that is read."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    machine = resolve_hardware("cuda", count=8)
    assert machine.peak_flops == 989e12 and machine.usd_per_hour == 2.5 and "datasheet" in machine.peak_source


def test_describe_machine_is_json_safe():
    info = hardware.describe_machine()
    assert info["logical_cores"] >= 1 and info["memory_gb"] > 0 and info["torch"]
    json.dumps(info)


def test_plan_arithmetic():
    cfg = ModelConfig.from_depth(4, vocab_size=4096, seq_len=512)
    gpu = Hardware("test GPU", count=8, peak_flops=1e15, peak_source="test", mfu=0.5, usd_per_hour=2.0)
    plan = make_plan(cfg, gpu, tokens=1e9)
    assert plan.total_flops == pytest.approx(flops_per_token(cfg) * 1e9)
    assert plan.seconds == pytest.approx(plan.total_flops / (1e15 * 0.5 * 8))
    assert plan.device_hours == pytest.approx(plan.seconds / 3600 * 8)
    assert plan.cost_usd == pytest.approx(plan.seconds / 3600 * 8 * 2.0)


def test_tokens_default_to_ratio_times_params():
    cfg = ModelConfig.from_depth(3, vocab_size=4096, seq_len=256)
    cpu = Hardware("test cpu", 1, 1e11, "test", 0.5, 0.0)
    plan = make_plan(cfg, cpu, tokens_per_param=10)
    assert plan.tokens == pytest.approx(10 * scaling_params(cfg))
    assert plan.cost_usd == 0


def test_budgets_set_the_flops():
    cfg = ModelConfig.from_depth(4, vocab_size=4096, seq_len=512)
    gpu = Hardware("test GPU", 4, 1e15, "test", 0.5, 2.0)
    assert make_plan(cfg, gpu, budget_flops=1e20).total_flops == pytest.approx(1e20)
    by_hours = make_plan(cfg, gpu, budget_hours=10)
    assert by_hours.seconds == pytest.approx(10 * 3600)
    by_dollars = make_plan(cfg, gpu, budget_dollars=80)  # $80 at 4 x $2/h = 10 hours
    assert by_dollars.seconds == pytest.approx(10 * 3600) and by_dollars.cost_usd == pytest.approx(80)
    assert by_dollars.tokens == pytest.approx(by_dollars.total_flops / flops_per_token(cfg))


@pytest.mark.parametrize("budget", [1e15, 3.7e19, 1e24])
@pytest.mark.parametrize("ratio", [10.5, 20])
def test_compute_optimal(budget, ratio):
    n, d = compute_optimal(budget, ratio)
    assert 6 * n * d == pytest.approx(budget)
    assert d / n == pytest.approx(ratio)


def test_closest_depth_finds_the_dial_setting():
    like = ModelConfig.from_depth(4, vocab_size=4096, seq_len=512)
    for depth in (2, 6, 12):
        n = scaling_params(ModelConfig.from_depth(depth, vocab_size=4096, seq_len=512))
        assert closest_depth(n * 1.05, like) == (depth, n)


def test_llama2_70b_on_6000_a100s_lands_near_12_days_and_2_million_dollars():
    cfg = ModelConfig.preset("llama", 80, vocab_size=32000, seq_len=4096, **LLAMA2_70B)
    plan = make_plan(cfg, resolve_hardware("A100", count=6000), tokens=2e12)
    assert 68e9 < plan.params_total < 70e9
    assert 5 < plan.seconds / 86400 < 30
    assert 0.5e6 < plan.cost_usd < 5e6


def test_cli_prints_a_table_and_json(capsys, fast_cpu_probe):
    plan_command()
    table = capsys.readouterr().out
    assert "wall time" in table and "compute-optimal" in table and "depth" in table
    plan_command(depth=12, hardware="H100", gpus=8, budget_dollars=100, json=True)
    data = json.loads(capsys.readouterr().out)
    assert data["hardware"]["name"] == "H100 SXM" and data["cost_usd"] == pytest.approx(100)
    assert data["optimal_depth"] >= 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hardware": "Z9000"}, "unknown hardware 'Z9000'"),
        ({"hardware": "A100", "mfu": 0.0}, r"mfu must be in \(0, 1\]"),
        ({"hardware": "A100", "mfu": 1.5}, r"mfu must be in \(0, 1\]"),
        ({"hardware": "A100", "budget_flops": -1.0}, "budget_flops must be a positive number"),
        ({"hardware": "A100", "budget_hours": 1.0, "budget_dollars": 5.0}, "give one budget"),
        ({"hardware": "A100", "train": TrainOverrides(tokens=10**9), "budget_hours": 1.0}, "not both"),
        ({"hardware": "A100", "train": TrainOverrides(tokens=-5)}, "tokens must be a positive number"),
        ({"hardware": "A100", "gpus": 0}, "number of GPUs"),
        ({"hardware": "cpu", "gpus": 4}, "CPU plan"),
        ({"hardware": "cpu", "budget_dollars": 10.0}, "needs a price"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, message, fast_cpu_probe):
    with pytest.raises(LlmlabError, match=message):
        plan_command(**kwargs)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_plan_estimates_the_run_pretrain_makes_of_each_preset(preset, capsys, fast_cpu_probe):
    plan_command(preset=preset, json=True)
    planned = json.loads(capsys.readouterr().out)
    train = resolve_settings(preset).train
    model_cfg = train.model_config(4096)
    run = train.resolved(model_cfg)  # what llmlab.train.pretrain trains: its steps, tokens and FLOPs
    assert planned["tokens"] == run.tokens == run.steps * run.batch_size * train.seq_len
    assert planned["total_flops"] == pytest.approx(run.flops, rel=1e-12)
    assert planned["total_flops"] == pytest.approx(flops_per_token(model_cfg, train.seq_len) * run.tokens, rel=1e-12)
    assert planned["model"]["depth"] == train.depth


def test_plan_and_a_real_pretraining_run_agree(tiny_run, tmp_path, capsys, fast_cpu_probe):
    import shutil

    import yaml

    from llmlab.train.pretrain import pretrain

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("pretrain", "base"))
    overrides = {"depth": 1, "seq_len": 32, "batch_size": 8, "tokens": 8 * 32 * 5 + 100,  # 5 whole steps
                 "model_overrides": {"d_model": 32, "n_heads": 2}, "bookkeeping": {"eval_every": 0, "eval_tokens": 256}}
    plan_command(preset="tiny", train=TrainOverrides(**{k: v for k, v in overrides.items() if k != "bookkeeping"}),
                 run_dir=run, json=True)
    planned = json.loads(capsys.readouterr().out)
    pretrain(run, resolve_settings("tiny", None, overrides).train)
    resolved = yaml.safe_load((run / "pretrain" / "config.yaml").read_text())["resolved"]
    trained = [json.loads(line) for line in (run / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert planned["tokens"] == resolved["tokens"] == max(r.get("tokens", 0) for r in trained) == 8 * 32 * 5
    assert planned["total_flops"] == pytest.approx(resolved["flops"], rel=1e-12)


def test_human_units():
    assert format_duration(12 * 86400) == "12 days"
    assert format_duration(90) == "1.5 min"
    assert format_dollars(2.1e6) == "$2.1M"
    assert format_dollars(0) == "$0"
