"""`llmlab eval ...`: evaluate a model.

    llmlab eval chat --model runs/x/chat_dpo --run_dir runs/x
"""

from __future__ import annotations

from pathlib import Path


def chat(*, model: Path, run_dir: Path = Path("runs/default"), max_tokens: int = 64, limit: int = 200) -> None:
    """The assistant's behaviour on held-out chats: turn ending, arithmetic, wiki token-F1, refusals, over-refusal.

    Args:
        model: the chat model folder to evaluate.
        run_dir: the run whose held-out chats to use (its default fine-tuning data, generated if missing);
            the summary is saved as <run_dir>/eval/chat_<model folder name>.json.
        max_tokens: greedy answers are cut at this many tokens (a turn not ended by then counts as not ended).
        limit: at most this many examples per metric.
    """
    from llmlab.eval.chat_metrics import chat_metrics
    from llmlab.files import atomic_write_json
    from llmlab.model.folder import load_model_folder

    net, tok, _ = load_model_folder(model)
    result = chat_metrics(net, tok, run_dir, max_tokens, limit)
    for name, value in result.items():
        if "rate" in value:
            low, high = value["ci95"]
            print(f"{name:<18} {value['rate']:.3f}  (95% CI {low:.3f}-{high:.3f}, n={value['n']})")
        else:
            print(f"{name:<18} {value['mean']:.3f}  (n={value['n']})")
    out = Path(run_dir) / "eval" / f"chat_{Path(model).name}.json"
    atomic_write_json(out, {"model": str(model), **result})
    print(f"saved {out}")
