"""Run evaluations on a model folder and write one JSONL per evaluation plus a summary.

    from llmlab.eval.suite import run_evals
    summary = run_evals(Path("runs/x/chat_sft"), Path("runs/x/eval/chat_sft"), preset="quick", seed=0)

    llmlab eval run --model runs/x/chat_sft                     # the same, from the command line

Writes out_dir/<name>.jsonl (one line per item: prompt, output, score, seed, decoding settings and what the
evaluation adds) and out_dir/summary.json:

    {"model", "stage", "kind" (base | chat), "preset", "seed", "sizes",
     "evals": {name: {"score", "ci95": [lo, hi] | null, "n", "chance": float | null, "unit", "metrics",
                      "seconds" (wall), "cpu_seconds" (this process, all threads: steadier on a shared machine),
                      "about", "notes"?, "samples"?}}}

Every file is written atomically. An existing summary of the same model, preset, seed and sizes keeps the
evaluations not re-run now, so `--evals '[mmlu]'` adds to it. Presets: "quick" sizes the subsets so that all
evaluations of the three default models take a few minutes on 2 CPU cores; "full" runs the complete test sets.
The same seed gives the same items and outputs (subsets and sampled draws are seeded; the rest is greedy).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from llmlab.errors import LlmlabError
from llmlab.eval.context import EvalContext
from llmlab.eval.registry import evals, model_kind
from llmlab.files import atomic_write_json, atomic_write_text, read_json, to_plain
from llmlab.layout import RunDir
from llmlab.model.loading import load_model

# Subset sizes (None = everything) and token budgets. Quick: ~200 MMLU questions give a +-6-point interval at
# chance, the rest ~1 s of CPU per few items each (greedy generation is ~1-2 ms per token for the default model).
PRESETS: dict[str, dict[str, int | None]] = {
    "quick": {"mmlu": 200, "gsm8k": 30, "knowledge": 40, "chat": 100, "assistant": 120, "chat_max_tokens": None,
              "gsm8k_max_tokens": 96},
    "full": {"mmlu": None, "gsm8k": None, "knowledge": None, "chat": None, "assistant": None, "chat_max_tokens": None,
             "gsm8k_max_tokens": None},
}
RESULT_KEYS = {"score", "ci95", "n", "chance", "metrics"}


def infer_run_dir(model_dir: Path) -> Path | None:
    """The run a model folder sits in (runs/x for runs/x/chat_sft), when that folder holds a prepared dataset."""
    parent = Path(model_dir).resolve().parent
    return parent if RunDir(parent).data.is_dir() else None


def select_evals(stage: str, kind: str, names: list[str] | None) -> list:
    """The Eval entries to run: `names` in the given order (each must apply to the model kind), or all that apply."""
    registry = evals()
    if names is None:
        return [e for e in registry.values() if kind in e.models]
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise LlmlabError(f"unknown evaluation(s) {', '.join(unknown)}; known: {', '.join(registry)}")
    wrong = [n for n in names if kind not in registry[n].models]
    if wrong:
        raise LlmlabError(f"{', '.join(wrong)} apply to {'/'.join(registry[wrong[0]].models)} models only; this "
                          f"model's stage is {stage!r} ({kind})")
    return [registry[n] for n in names]


def run_evals(model_dir: Path, out_dir: Path, *, run_dir: Path | None = None, names: list[str] | None = None,
              preset: str = "quick", seed: int = 0, sizes: dict[str, int | None] | None = None,
              quantize: str | None = None) -> dict:
    """Run the evaluations `names` (None: every one that applies to the model's stage) and return the summary.

    run_dir: the run whose data the evaluations read (None: the model folder's parent if it holds data/).
    sizes: overrides of the preset's subset sizes and token budgets, e.g. {"mmlu": 50}.
    quantize: evaluate the model in this inference format (llmlab.model.quantize, e.g. "int8"); None: float32.
    """
    if preset not in PRESETS:
        raise LlmlabError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    unknown = set(sizes or {}) - set(PRESETS[preset])
    if unknown:
        raise LlmlabError(f"unknown size(s) {', '.join(sorted(unknown))}; known: {', '.join(PRESETS[preset])}")
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model, tok, info = load_model(model_dir, quantize=quantize)
    stage = info.get("stage", "base")
    run_dir = Path(run_dir) if run_dir is not None else infer_run_dir(model_dir)
    chosen = select_evals(stage, model_kind(stage, tok), names)
    missing = [e.name for e in chosen if e.needs_run_dir and run_dir is None]
    if missing:
        raise LlmlabError(f"{model_dir}: {', '.join(missing)} read the run's data but no run folder was given or found "
                          "beside the model; pass --run_dir (or choose other --evals)")
    settings = {**PRESETS[preset], **(sizes or {})}
    summary = {"model": str(model_dir), "stage": stage, "kind": model_kind(stage, tok), "preset": preset, "seed": seed,
               "sizes": settings, **({"quantize": quantize} if quantize else {}), "evals": {}}
    previous = out_dir / "summary.json"
    if previous.exists():
        old = read_json(previous)
        if all(old.get(k) == summary.get(k) for k in ("model", "stage", "preset", "seed", "sizes", "quantize")):
            summary["evals"] = old.get("evals", {})
    for e in chosen:
        torch.manual_seed(seed)
        ctx = EvalContext(model, tok, info, model_dir, run_dir, seed, preset, settings)
        start, cpu_start = time.perf_counter(), time.process_time()
        result = e.run(ctx)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        if not RESULT_KEYS <= result.keys():
            raise LlmlabError(f"evaluation {e.name} returned no {', '.join(sorted(RESULT_KEYS - result.keys()))}")
        lines = "".join(json.dumps(to_plain(item), ensure_ascii=False) + "\n" for item in ctx.items)
        atomic_write_text(out_dir / f"{e.name}.jsonl", lines)
        summary["evals"][e.name] = {**result, "unit": e.unit, "seconds": round(seconds, 2),
                                    "cpu_seconds": round(cpu_seconds, 2), "about": e.about}
        atomic_write_json(out_dir / "summary.json", summary)  # after each evaluation: a crash keeps what was done
    return summary


def format_summary(summary: dict) -> str:
    """The summary as a table: score, 95% interval, n, chance, wall and CPU seconds."""
    lines = [f"{summary['model']} ({summary['stage']}), preset {summary['preset']}, seed {summary['seed']}",
             f"  {'evaluation':<18} {'score':>8} {'95% CI':>13} {'n':>6} {'chance':>7} {'unit':>10} {'s':>6} {'cpu s':>6}"]
    for name, r in summary["evals"].items():
        ci = f"{r['ci95'][0]:.3f}-{r['ci95'][1]:.3f}" if r["ci95"] else "-"
        chance = f"{r['chance']:.3f}" if r["chance"] is not None else "-"
        lines.append(f"  {name:<18} {r['score']:>8.3f} {ci:>13} {r['n']:>6} {chance:>7} {r['unit']:>10} "
                     f"{r['seconds']:>6.1f} {r.get('cpu_seconds', 0.0):>6.1f}")
    return "\n".join(lines)
