"""`llmlab eval ...`: evaluate a model (llmlab.eval: compression, knowledge, MMLU, GSM8K, chat behaviour, samples).

    llmlab eval run --model runs/x/base                                  # every evaluation that applies, quick preset
    llmlab eval run --model runs/x/chat_sft --evals '[mmlu,gsm8k]' --preset full
    llmlab eval chat --model runs/x/chat_dpo --run_dir runs/x            # the chat behaviour evaluations only
    llmlab eval list                                                     # the registered evaluations
"""

from __future__ import annotations

from pathlib import Path

from llmlab.layout import DEFAULT_RUN_DIR, RunDir


def run(*, model: Path, run_dir: Path | None = None, evals: list[str] | None = None, preset: str = "quick",
        seed: int = 0, out: Path | None = None, sizes: dict[str, int | None] | None = None,
        quantize: str | None = None) -> None:
    """Run evaluations on a model folder; write <name>.jsonl per evaluation and summary.json, print a table.

    Args:
        model: the model to evaluate: an llmlab model folder (base or chat), or what `llmlab chat --model` takes
            (a Hugging Face folder, a GGUF file, smollm2); imported models count as chat models.
        run_dir: the run whose data the evaluations read (held-out text, titles, fine-tuning data); default: the
            model folder's parent when it holds data/.
        evals: which evaluations, e.g. '[mmlu,gsm8k]' (`llmlab eval list`); default: all that apply to the model's
            stage.
        preset: quick (subsets: a few minutes for the default models on 2 CPU cores) or full (complete test sets).
        seed: seeds subsets and sampled outputs; the same seed gives the same files.
        out: the output folder; default <run_dir>/eval/<model folder name>/ (runs/eval/<name>/ without a run).
        sizes: overrides of the preset's subset sizes, e.g. '{mmlu: 50, gsm8k: 10}' (null = everything).
        quantize: int8 to evaluate the model with int8 weight-only matrices (llmlab.model.quantize); None: float32.
    """
    from llmlab.eval.suite import format_summary, infer_run_dir, run_evals

    run_dir = run_dir if run_dir is not None else infer_run_dir(model)
    if out is None:
        name = Path(model).resolve().name
        out = RunDir(run_dir).eval(name) if run_dir is not None else Path("runs") / "eval" / name
    summary = run_evals(model, out, run_dir=run_dir, names=evals, preset=preset, seed=seed, sizes=sizes,
                        quantize=quantize)
    print(format_summary(summary))
    print(f"saved {out}/summary.json and one JSONL per evaluation")


def chat(*, model: Path, run_dir: Path = DEFAULT_RUN_DIR, max_tokens: int = 64, limit: int = 200) -> None:
    """The assistant's behaviour on held-out chats: turn ending, arithmetic, refusals, over-refusal.

    Args:
        model: the chat model folder to evaluate.
        run_dir: the run whose held-out chats to use (its default fine-tuning data, generated if missing);
            results go to <run_dir>/eval/<model folder name>/.
        max_tokens: answers (greedy and sampled) are cut at this many tokens (a turn not ended by then counts as not
            ended).
        limit: at most this many examples per held-out set.
    """
    from llmlab.eval.chat_metrics import CHAT_EVALS

    run(model=model, run_dir=run_dir, evals=list(CHAT_EVALS), preset="full",
        sizes={"chat": limit, "chat_max_tokens": max_tokens})


def list_evals() -> None:
    """List the registered evaluations: name, unit, the models they apply to (base, chat), whether they need a run."""
    from llmlab.eval.registry import evals

    for e in evals().values():
        needs = "run data" if e.needs_run_dir else ""
        print(f"{e.name:<14} {e.unit:<10} {'/'.join(e.models):<10} {needs:<9} {e.about}")
