"""Everything the report says, read from a run directory: what each stage left on disk, plus the environment.

    from llmlab.report.facts import collect
    facts = collect(Path("runs/speedrun"))    # a plain dict; missing stages are simply absent (shown as not run)

Files read (any of them may be missing):
    speedrun.json                         per-stage status, wall time and estimated cost, the environment of the run
    data/prepare_config.yaml, data/stats.json, tokenizer/train_config.yaml
    pretrain/{config.yaml, metrics.jsonl, zip_view.json}, base/model.json
    sft/{config.yaml, metrics.jsonl}, chat_sft/model.json, prefs/{config.yaml, metrics.jsonl}, chat_dpo/model.json
    eval/<model folder>/summary.json and samples.jsonl (llmlab.eval.suite.run_evals)
    labs/<lab>/section.json and its PNGs (llmlab.report.lab_sections)
The paths come from llmlab.layout.

Cost estimates: a GPU stage costs its wall time x the indicative rental price of llmlab.hardware.ACCELERATORS x the
number of GPUs; a CPU stage costs its wall time x CPU_USD_PER_CORE_HOUR x the logical cores. Both are estimates.
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import yaml

from llmlab.files import read_json
from llmlab.layout import MODEL_OF_STAGE, MODELS, RunDir
from llmlab.report.lab_sections import read_lab_sections

# On-demand price of one vCPU-hour of a general-purpose cloud VM: AWS c7i.large (2 vCPUs, 4 GB) lists $0.08925/h in
# us-east-1 (2025), i.e. ~$0.045 per vCPU-hour; smaller providers charge less, so this is an upper-side estimate.
CPU_USD_PER_CORE_HOUR = 0.045

SAMPLES_PER_MODEL = 3
# The assistant evaluations whose items the report shows, greedy beside sampled answers (llmlab.eval.assistant_evals)
ASSISTANT_EXAMPLES = {"taught_facts": 2, "multiturn": 2, "identity": 1}

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the llmlab package this code runs from (installed or a checkout)


def git_commit(folder: Path) -> dict | None:
    """{"commit", "dirty"} of the git checkout holding `folder`, or None (not a checkout, or no git)."""
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def environment(world: int = 1, device: str = "cpu") -> dict:
    """The machine, software versions and llmlab's commit, as recorded by a run (JSON-safe)."""
    from importlib.metadata import PackageNotFoundError, version

    from llmlab.hardware import describe_machine

    try:
        llmlab_version = version("llmlab")
    except PackageNotFoundError:  # run from a source tree that was never installed
        llmlab_version = "not installed"
    env = describe_machine()
    env.update(llmlab=llmlab_version, python_implementation=platform.python_implementation(), processes=world,
               device=device, git=git_commit(PACKAGE_DIR))
    env["usd_per_hour"], env["price_basis"] = price_per_hour(env)
    return env


def price_per_hour(env: dict) -> tuple[float, str]:
    """(estimated USD per hour of what the run uses, how it was estimated)."""
    from llmlab.hardware import find_accelerator

    if env.get("device") == "cuda" and env.get("cuda_devices"):
        name = env["cuda_devices"][0]
        gpus = min(env.get("processes", 1), len(env["cuda_devices"]))
        known = find_accelerator(name)
        if known is None:
            return 0.0, f"{name} is not in llmlab.hardware.ACCELERATORS: no price known"
        return gpus * known.usd_per_hour, f"{gpus} x {known.name} at ${known.usd_per_hour}/h (indicative rental price)"
    cores = env.get("logical_cores") or 1
    basis = f"{cores} vCPUs at ${CPU_USD_PER_CORE_HOUR}/vCPU-hour (cloud on-demand estimate)"
    return cores * CPU_USD_PER_CORE_HOUR, basis


def read_yaml(path: Path) -> dict | None:
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None


def read_json_or_none(path: Path):
    return read_json(path) if path.exists() else None


def read_jsonl(path: Path) -> list[dict]:
    """The complete JSON lines of `path` ([] if missing); a torn last line of a killed writer is ignored."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def code_size(package_dir: Path) -> list[dict]:
    """Python files, lines and non-blank lines per subpackage of `package_dir` (and of a tests/ folder beside it)."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir)
        key = f"{package_dir.name}/{rel.parts[0]}" if len(rel.parts) > 1 else f"{package_dir.name} (top level)"
        groups.setdefault(key, []).append(path)
    tests = package_dir.parent / "tests"
    if tests.is_dir():
        groups["tests"] = sorted(tests.rglob("*.py"))
    rows = []
    for name, paths in sorted(groups.items()):
        lines = [line for p in paths for line in p.read_text(encoding="utf-8", errors="replace").splitlines()]
        rows.append({"package": name, "files": len(paths), "lines": len(lines),
                     "non_blank": sum(1 for line in lines if line.strip())})
    return rows


def stage_facts(run_dir: Path, stage: str) -> dict | None:
    """A training stage's config, metrics and model info, or None when it never started."""
    run = RunDir(run_dir)
    work = run.stage(stage)
    config = read_yaml(work.config)
    metrics = read_jsonl(work.metrics)
    model_info = read_json_or_none(run.model_of(stage) / "model.json")
    if config is None and not metrics and model_info is None:
        return None
    train_seconds = max((r["train_time"] for r in metrics if "train_time" in r), default=None)
    return {"config": config, "metrics": metrics, "model": model_info, "finished": model_info is not None,
            "train_seconds": train_seconds}


def eval_facts(run_dir: Path) -> dict:
    """{model folder: {"summary": summary.json, "samples": the first few samples}} for each evaluated model."""
    out = {}
    for folder in MODELS:
        summary = read_json_or_none(RunDir(run_dir).eval(folder) / "summary.json")
        if summary is not None:
            samples = read_jsonl(RunDir(run_dir).eval(folder) / "samples.jsonl")[:SAMPLES_PER_MODEL]
            examples = {name: read_jsonl(RunDir(run_dir).eval(folder) / f"{name}.jsonl")[:count]
                        for name, count in ASSISTANT_EXAMPLES.items()}
            out[folder] = {"summary": summary, "samples": samples,
                           "assistant": {name: rows for name, rows in examples.items() if rows}}
    return out


def collect(run_dir: Path) -> dict:
    """All the facts of a run directory (see the module docstring); the environment is the run's if it recorded
    one (speedrun.json), else this machine's, marked as such."""
    run = RunDir(run_dir)
    speedrun = read_json_or_none(run.speedrun_record)
    env = (speedrun or {}).get("environment")
    return {
        "run_dir": str(run.root),
        "speedrun": speedrun,
        "environment": env or environment(),
        "environment_is_current_machine": env is None,
        "data": {"config": read_yaml(run.data / "prepare_config.yaml"),
                 "stats": read_json_or_none(run.data / "stats.json"),
                 "tokenizer": read_yaml(run.tokenizer / "train_config.yaml")},
        "stages": {stage: stage_facts(run.root, stage) for stage in MODEL_OF_STAGE},
        "zip_view": read_json_or_none(run.stage("pretrain").zip_view),
        "evals": eval_facts(run.root),
        "labs": read_lab_sections(run.root),
        "code": code_size(PACKAGE_DIR),
    }
