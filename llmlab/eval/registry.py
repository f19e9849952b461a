"""The registry of evaluations: each is one function `run(ctx) -> result` in a small module, registered by name.

    @register("mmlu", unit="accuracy")
    def run(ctx: EvalContext) -> dict:
        ...
        return {"score": 0.27, "ci95": [0.21, 0.33], "n": 200, "chance": 0.25, "metrics": {...}, "notes": "..."}

    evals()                          # name -> Eval, in the order of MODULES (importing them registers them)

`models` says which models an evaluation applies to: "base" (model.json "stage" base) and/or "chat" (any other
stage: sft, dpo, flywheel, imported models with a chat format); `needs_run_dir` that it
reads the run's data (held-out text, titles, default fine-tuning data). A new evaluation is one module that calls
`register` and one name added to MODULES.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

BOTH = ("base", "chat")
CHAT_ONLY = ("chat",)
MODULES = ("compression", "knowledge", "mmlu", "gsm8k", "chat_metrics", "assistant_evals", "samples")  # llmlab.eval.<module>, table order


@dataclass(frozen=True)
class Eval:
    name: str
    run: Callable[..., dict]  # (EvalContext) -> {"score", "ci95", "n", "chance", "metrics", optional "notes"}
    unit: str  # what the score is: "accuracy", "rate", "bpb", "token_f1", ...
    models: tuple[str, ...]  # "base", "chat"
    needs_run_dir: bool
    about: str  # the first line of the function's docstring


_EVALS: dict[str, Eval] = {}


def model_kind(stage: str, tok) -> str:
    """"base" for a pre-trained model (or an imported one without a chat format), else "chat"."""
    return "base" if stage == "base" or getattr(tok, "chat_format", "llmlab") is None else "chat"


def register(name: str, *, unit: str, models: tuple[str, ...] = BOTH, needs_run_dir: bool = False):
    def add(fn: Callable[..., dict]) -> Callable[..., dict]:
        _EVALS[name] = Eval(name, fn, unit, models, needs_run_dir, (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return add


def evals() -> dict[str, Eval]:
    for module in MODULES:
        importlib.import_module(f"llmlab.eval.{module}")

    def place(e: Eval) -> int:  # MODULES order whatever was imported first; others (e.g. tests' own) last
        module = e.run.__module__.rsplit(".", 1)[-1]
        return MODULES.index(module) if module in MODULES else len(MODULES)

    return {e.name: e for e in sorted(_EVALS.values(), key=place)}  # sorted() is stable: registration order within
