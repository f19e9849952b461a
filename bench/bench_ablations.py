"""Each modern option of the default recipe switched off (or swapped) in turn, at the same token budget, on this
machine: held-out bits per byte, tokens/s and training time. Measures whether each option pays off at CPU scale.

    .venv/bin/python bench/bench_ablations.py                 # 0.8 M tokens per run, ~15 min in all
    .venv/bin/python bench/bench_ablations.py --tokens 300000 # a quick look

Outputs (git-ignored) under bench/out/ablations/; prints a table (lower bpb is better).
"""

from __future__ import annotations

import argparse
import json

from pretrain_runs import OUT as BENCH_OUT
from pretrain_runs import linked_run, llmlab, prepared_data, summarise

OUT = BENCH_OUT / "ablations"

VARIANTS = {
    "default": [],
    "logit softcap 15": ["--train.model_overrides", '{"logit_softcap": 15.0}'],
    "no QK-norm": ["--train.model_overrides", '{"qk_norm": false}'],
    "ReLU² instead of SwiGLU": ["--train.model_overrides", '{"mlp": "relu2"}'],
    "untied head": ["--train.model_overrides", '{"tie_embeddings": false}'],
    "no zero-init projections": ["--train.model_overrides", '{"zero_init_proj": false}'],
    "AdamW instead of Muon": ["--train.optimizer", "adamw"],
    "gpt2-adamw baseline": ["--train.preset", "gpt2-adamw"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=800_000)
    parser.add_argument("--only", nargs="*", help="run only these variants (names as in the table)")
    args = parser.parse_args()
    data_run = prepared_data()
    results = {}
    for i, (name, extra) in enumerate(VARIANTS.items()):
        if args.only and name not in args.only:
            continue
        run = linked_run(data_run, OUT / f"variant{i}")
        llmlab("pretrain", "--run_dir", str(run), "--train.tokens", str(args.tokens),
               "--train.bookkeeping.eval_every", "0", "--train.bookkeeping.checkpoint_every", "0", *extra)
        results[name] = summarise(run)
        (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n{args.tokens:,} tokens each\n{'variant':<28}{'val bpb':>9}{'wiki bpb':>10}{'tok/s':>9}{'train s':>9}")
    for name, r in results.items():
        print(f"{name:<28}{r['final_bpb']:>9.3f}{r['zip_view']['model_bpb']:>10.3f}{r['tok_s']:>9,.0f}{r['train_seconds']:>9.0f}")


if __name__ == "__main__":
    main()
