"""The main job: data -> tokenizer -> pre-train -> SFT -> DPO -> eval -> report, stage by stage and resumable.

    llmlab speedrun --run_dir runs/speedrun                      # the default preset (depth 3) on this machine
    llmlab speedrun --run_dir runs/t --preset tiny               # a smoke run: every stage, small
    llmlab speedrun --run_dir runs/d6 --preset d6                # bigger presets are meant for a GPU
    llmlab speedrun --run_dir runs/smol --preset smollm2         # no pre-training: SmolLM2-135M through SFT and DPO
    llmlab speedrun --run_dir runs/x --depth 4 --train.tokens 2000000 --sft.epochs 1
    torchrun --standalone --nproc_per_node 2 -m llmlab speedrun --run_dir runs/x   # training stages distributed

Each stage calls the same function as its own command (`llmlab data prepare`, `pretrain`, `sft`, `prefs`), with
resume on: a finished stage finds its outputs made with the same settings and does nothing (the stages' own
settings fingerprints decide), and a killed training stage continues exactly from its newest checkpoint. The
evaluation of each model is skipped when eval/<model>/summary.json exists for the same weights (sha256 recorded
here). The report is rewritten at the end of every invocation. Under torchrun every process runs the training
stages together; data, eval and report run on rank 0 while the others wait.

Progress is kept in <run_dir>/speedrun.json (written atomically after every change): the preset and its resolved
settings, the environment, and per stage its status (running / done / failed), the wall time of the invocation
that did its work, and an estimated cost (llmlab.report.facts: wall time x an indicative price per hour).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from llmlab.data.prepare import PrepareConfig
from llmlab.errors import LlmlabError
from llmlab.files import atomic_write_json, file_sha256, read_json, to_plain
from llmlab.layout import MODELS, STAGES, RunDir
from llmlab.overrides import apply_overrides, overrides_of, with_values
from llmlab.pipeline.prepare import prepare
from llmlab.train.distributed import Dist, barrier, distributed
from llmlab.train.prefs import PrefsConfig
from llmlab.train.pretrain import PretrainConfig
from llmlab.train.sft import SFTConfig

TrainOverrides = overrides_of(PretrainConfig)
SFTOverrides = overrides_of(SFTConfig)
PrefsOverrides = overrides_of(PrefsConfig)

SMOLLM2_EVALS = ["turn_ending", "arithmetic", "refusal", "over_refusal", "taught_facts", "knowledge_transfer",
                 "multiturn", "identity", "samples"]

# Named sizes. Each gives the depth dial and values that replace the stages' defaults (PretrainConfig, SFTConfig,
# PrefsConfig; nested dicts for their groups); --depth and the typed --train/--sft/--prefs options override them in
# turn. Times are in README.md ("Presets").
PRESETS = {
    # every stage in about a minute on 2 cores (plus the evaluation): for smoke tests, not for quality
    "tiny": {"depth": 2, "train": {"tokens": 300_000, "bookkeeping": {"checkpoint_every": 25}},
             "sft": {"epochs": 0.25}, "prefs": {"epochs": 0.5}},
    # the CPU default: depth 3, 2 tokens per parameter (~7 min of pre-training on 2 cores), SFT 4 epochs, DPO 1
    "default": {"depth": 3, "train": {}, "sft": {}, "prefs": {}},
    # 2 tokens/param as on the CPU (~24 M tokens, ~8 passes over the built-in corpus's 3 M): meant for one GPU
    "d6": {"depth": 6, "train": {}, "sft": {}, "prefs": {}},
    # GPT-2-small-like width (768) at Chinchilla's 20 tokens/param (~1.8 B tokens): one GPU and a corpus of that
    # size (--data.sources); on the built-in corpus it would repeat each document hundreds of times
    "d12": {"depth": 12, "train": {"tokens_per_param": 20.0}, "sft": {}, "prefs": {}},
    # no pre-training: the packaged SmolLM2-135M-Instruct is imported as the base, then llmlab's own SFT (the default
    # mixture, safety included) and DPO, as LoRA rank 16 (full fine-tuning of 135 M parameters at the CPU's ~230
    # trained tokens/s would take hours). LoRA wants a smaller rate than the default's full fine-tuning. Half an
    # epoch of the default mixture (~18 min); the held-out loss only at the end (each pass over it takes ~3 min).
    # Its eval stage runs the assistant's evaluations only: on 2 cores a 135 M model takes ~8 min per model for
    # compression (two passes over ~300 KB of held-out text) and ~5-8 min for MMLU's 200 questions (`llmlab eval run
    # --model runs/smol/chat_dpo --evals '[compression, mmlu, gsm8k, knowledge]'` measures them when wanted).
    "smollm2": {"start": "smollm2", "train": {}, "evals": SMOLLM2_EVALS,
                "sft": {"lora_rank": 16, "lr": 0.001, "epochs": 0.5, "micro_batch_size": 8,
                        "bookkeeping": {"eval_every": 0}},
                "prefs": {"lora_rank": 16}},
}


@dataclass
class StageSettings:
    """The resolved settings of the three training stages of a speedrun."""

    train: PretrainConfig
    sft: SFTConfig
    prefs: PrefsConfig
    start: str | None = None  # a model imported as the base instead of pre-training (any `load_model` spec)
    evals: list[str] | None = None  # the evaluations of the eval stage (None: every one that applies to each model)


def resolve_settings(preset: str, depth: int | None = None, train=None, sft=None, prefs=None) -> StageSettings:
    """The stages' defaults, then the preset's values, then --depth, then the overrides: typed (TrainOverrides,
    SFTOverrides, PrefsOverrides, as the command line gives them) or plain dicts of fields (from Python); None: none."""
    if preset not in PRESETS:
        raise LlmlabError(f"--preset {preset!r}: unknown; presets are {', '.join(PRESETS)}")
    p = PRESETS[preset]

    def settle(cfg, preset_values: dict, overrides, option: str):
        cfg = with_values(cfg, preset_values, f"preset {preset}: {option}")
        if isinstance(overrides, dict):
            return with_values(cfg, overrides, f"--{option}")
        return apply_overrides(cfg, overrides)

    if "start" in p and depth is not None:
        raise LlmlabError(f"--depth: preset {preset} imports {p['start']} instead of pre-training; it has no depth dial")
    depth = depth or p.get("depth")
    return StageSettings(train=settle(PretrainConfig(), {"depth": depth, **p["train"]} if depth else p["train"], train,
                                      "train"),
                         sft=settle(SFTConfig(), p["sft"], sft, "sft"),
                         prefs=settle(PrefsConfig(), p["prefs"], prefs, "prefs"), start=p.get("start"),
                         evals=p.get("evals"))


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class Progress:
    """<run_dir>/speedrun.json: the record of every stage, written by rank 0 only."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.path, self.enabled = RunDir(run_dir).speedrun_record, enabled
        self.state = read_json(self.path) if self.path.exists() else {"stages": {}}

    def save(self) -> None:
        if self.enabled:
            atomic_write_json(self.path, self.state)

    def stage(self, name: str) -> dict:
        return self.state["stages"].setdefault(name, {})

    def start(self, name: str) -> None:
        record = self.stage(name)
        record.update(status="running", attempts=record.get("attempts", 0) + 1, started=now())
        record.pop("error", None)
        self.save()

    def finish(self, name: str, seconds: float, did_work: bool) -> None:
        """A stage ended well. One that found nothing to do keeps the time of the invocation that did the work."""
        record = self.stage(name)
        record["status"] = "done"
        if did_work or "seconds" not in record:
            price = self.state["environment"]["usd_per_hour"]
            record.update(seconds=seconds, cost_usd=seconds / 3600 * price, finished=now())
            record.pop("checked", None)
            record.pop("note", None)
            if not did_work:  # finished before speedrun.json knew of it (e.g. by the stage's own command)
                record["note"] = "found finished: the time is this invocation's check, not the original work"
        else:
            record["checked"] = now()
            record["attempts"] -= 1  # a re-check is not an attempt at the work
        self.save()

    def fail(self, name: str, error: BaseException) -> None:
        record = self.stage(name)
        message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__  # Ctrl-C has no text
        record.update(status="failed", error=message, failed=now())
        self.save()


def data_stage(run_dir: Path, data: PrepareConfig, vocab_size: int) -> bool:
    """`llmlab data prepare`; returns whether it did any work (the token manifest was (re)written)."""
    manifest = RunDir(run_dir).tokens_manifest
    before = manifest.stat().st_mtime_ns if manifest.exists() else None
    prepare(run_dir, data, vocab_size)
    return manifest.stat().st_mtime_ns != before


def import_stage(run_dir: Path, source: str) -> bool:
    """The pretrain stage of a preset that starts from an existing model: import it as <run_dir>/base, once.
    Returns whether it did any work."""
    from llmlab.model.loading import import_model

    base = RunDir(run_dir).model_of("pretrain")
    if (base / "model.json").exists() and read_json(base / "model.json").get("source") == source:
        print(f"pretrain: {base} is {source}, imported before; nothing to do")
        return False
    model, tok = import_model(source, base)
    print(f"pretrain: none; imported {source} as {base} ({sum(t.numel() for t in model.parameters()):,} parameters, chat format "
          f"{tok.chat_format})")
    return True


def evaluate_models(run_dir: Path, progress: Progress, eval_preset: str, seed: int,
                    names: list[str] | None = None) -> bool:
    """Evaluate each model folder into eval/<folder>/ (the evaluations `names`; None: all that apply) unless already
    done for the same weights; returns whether any evaluation ran. The sha256 of each evaluated model.safetensors is
    recorded as soon as its eval finishes, so a killed eval stage resumes with the next model."""
    from llmlab.eval.suite import run_evals

    done = progress.stage("eval").setdefault("models", {})
    did_work = False
    run = RunDir(run_dir)
    for folder in MODELS:
        model = run.model(folder)
        if not (model / "model.json").exists():
            raise LlmlabError(f"{model}: no model to evaluate (its training stage has not finished)")
        key = {"sha256": file_sha256(model / "model.safetensors"), "preset": eval_preset, "seed": seed,
               **({"evals": names} if names else {})}
        out = run.eval(folder)
        if done.get(folder) == key and (out / "summary.json").exists():
            print(f"eval: {out} is up to date; nothing to do")
            continue
        summary = run_evals(model, out, run_dir=run_dir, names=names, preset=eval_preset, seed=seed)
        for name, result in summary.get("evals", {}).items():
            if isinstance(result.get("score"), (int, float)):
                print(f"eval {folder:<9} {name:<12} {result['score']:.3f}")
        done[folder] = key
        progress.save()
        did_work = True
    return did_work


def print_estimate(train: PretrainConfig, vocab_size: int, world: int) -> None:
    """What `llmlab plan` expects pre-training to take on this machine (an estimate: assumed MFU, probed peak)."""
    import torch

    from llmlab.train.plan import format_duration, plan_pretraining, resolve_hardware

    hardware = resolve_hardware("cuda", world) if torch.cuda.is_available() else resolve_hardware("cpu")
    plan = plan_pretraining(train, vocab_size, hardware)
    print(f"speedrun: depth {train.depth}, {plan.params_total:,} parameters, {plan.tokens:,.0f} pre-training tokens; "
          f"`llmlab plan` estimates {format_duration(plan.seconds)} of pre-training on {hardware.name} "
          f"(at MFU {hardware.mfu:g}; the whole speedrun adds data, SFT, DPO, eval and report)")


def speedrun(run_dir: Path, preset: str = "default", depth: int | None = None, data: PrepareConfig | None = None,
             vocab_size: int = 4096, train=None, sft=None, prefs=None, eval_preset: str = "quick", seed: int = 0) -> dict:
    """Run every stage not yet finished (see the module docstring); returns speedrun.json's contents."""
    from llmlab.report.facts import environment

    run_dir = Path(run_dir)
    settings = resolve_settings(preset, depth, train, sft, prefs)
    data = data or PrepareConfig()
    # One process group for the whole run: under torchrun the training stages' `distributed()` find it and join it,
    # where destroying and re-creating the default group between stages would race on the rendezvous store.
    with distributed(settings.train.bookkeeping.device) as d:
        progress = Progress(run_dir, enabled=d.is_main)
        progress.state.update(preset=preset, settings=to_plain({"data": data, "vocab_size": vocab_size,
                                                                **vars(settings), "eval_preset": eval_preset,
                                                                "seed": seed}))
        progress.state["environment"] = environment(d.world, d.device.type)
        progress.state.setdefault("started", now())
        progress.save()
        if d.is_main and not settings.start:
            print_estimate(settings.train, vocab_size, d.world)
        run_stages(run_dir, d, progress, settings, data, vocab_size, eval_preset, seed)
    if d.is_main:
        print_summary(run_dir, progress.state)
    return progress.state


def run_stages(run_dir: Path, d: Dist, progress: Progress, settings: StageSettings, data: PrepareConfig, vocab_size: int,
               eval_preset: str, seed: int) -> None:
    from llmlab.report.render import write_report
    from llmlab.train import prefs as prefs_stage
    from llmlab.train import pretrain as pretrain_stage
    from llmlab.train import sft as sft_stage

    def on_main(fn):
        """Run fn on rank 0 while any other processes wait; returns fn's result on rank 0, None elsewhere."""
        result = fn() if d.is_main else None
        barrier(d)
        return result

    steps = {
        "data": lambda: on_main(lambda: data_stage(run_dir, data, vocab_size)),
        "pretrain": ((lambda: on_main(lambda: import_stage(run_dir, settings.start))) if settings.start else
                     (lambda: not pretrain_stage.pretrain(run_dir, settings.train, resume=True).get("skipped"))),
        "sft": lambda: not sft_stage.sft(run_dir, settings.sft, resume=True).get("skipped"),
        "prefs": lambda: not prefs_stage.prefs(run_dir, settings.prefs, resume=True).get("skipped"),
        "eval": lambda: on_main(lambda: evaluate_models(run_dir, progress, eval_preset, seed, settings.evals)),
        "report": lambda: on_main(lambda: bool(write_report(run_dir))),
    }
    for number, name in enumerate(STAGES, 1):
        if d.is_main:
            print(f"\n== speedrun {number}/{len(STAGES)}: {name} ==", flush=True)
        progress.start(name)
        start = time.perf_counter()
        try:  # the stages' own `distributed()` find this group and join it (llmlab/train/distributed.py)
            did_work = steps[name]()
        except BaseException as e:  # KeyboardInterrupt too: the record says where the run stopped
            progress.fail(name, e)
            raise
        progress.finish(name, time.perf_counter() - start, bool(did_work))
    progress.state["finished"] = now()
    progress.save()


def print_summary(run_dir: Path, state: dict) -> None:
    print("\nspeedrun finished:")
    for name in STAGES:
        record = state["stages"].get(name, {})
        seconds = record.get("seconds")
        when = "" if "checked" not in record else " (found finished on this run)"
        print(f"  {name:<9} {record.get('status', '-'):<8} {'-' if seconds is None else f'{seconds:8.1f} s'}{when}")
    run = RunDir(run_dir)
    print(f"\nreport: {run.report / 'report.md'} (self-contained page: {run.report / 'report.html'})")
    print(f"chat with the assistant: {llmlab_command()} chat --model {run.model_of('prefs')}")


def llmlab_command() -> str:
    """`llmlab` when it is on the PATH as this interpreter's script, else that script's path (e.g. .venv/bin/llmlab
    after `make speedrun`, whose virtual environment is not activated)."""
    script = Path(sys.executable).parent / "llmlab"
    if not script.exists() or shutil.which("llmlab") == str(script):
        return "llmlab"
    return os.path.relpath(script) if not os.path.relpath(script).startswith("..") else str(script)
