"""Side by side on this machine, same tokenizer and data: the nanoGPT-style baseline (`gpt2-adamw`) against the
default recipe. Prints tokens/s, MFU and held-out bits per byte against training time, and plots bpb vs time.

    .venv/bin/python bench/bench_pretrain.py                         # baseline 10 min + default run (~25 min)
    .venv/bin/python bench/bench_pretrain.py --baseline_minutes 2    # a quick look

The default recipe runs exactly as `llmlab pretrain` runs it (the run the end-to-end job uses). The baseline's
token budget is set from a short calibration of its speed so that it trains for `--baseline_minutes`. Both evaluate
the same held-out tokens every `--eval_every` steps; evaluation time is excluded from the training clock.
Target: the default recipe reaches the baseline's final bpb in <= half the baseline's time.
Outputs (git-ignored) under bench/out/pretrain/: run folders, bpb_vs_time.png, results.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pretrain_runs import OUT as BENCH_OUT
from pretrain_runs import linked_run, llmlab, prepared_data, summarise

OUT = BENCH_OUT / "pretrain"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in results.items():
        t, bpb = zip(*r["curve"])
        ax.plot([s / 60 for s in t], bpb, marker=".", label=f"{name} ({r['tok_s']:,.0f} tok/s, MFU {r['mfu']:.0%})")
    best = min(results.values(), key=lambda r: r["final_bpb"])["zip_view"]
    ax.axhline(min(best["compressors_bpb"].values()), color="gray", ls="--", label="best classical compressor (held-out wiki)")
    ax.set_xlabel("training time (minutes, evaluation excluded)")
    ax.set_ylabel("held-out bits per byte (val split)")
    ax.set_title("Pre-training on this CPU: default recipe vs nanoGPT-style baseline")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline_minutes", type=float, default=10.0)
    parser.add_argument("--eval_every", type=int, default=25)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    data_run = prepared_data()
    common = ["--train.bookkeeping.eval_every", str(args.eval_every), "--train.bookkeeping.checkpoint_every", "0"]

    calib = linked_run(data_run, OUT / "calibrate")
    llmlab("pretrain", "--run_dir", str(calib), "--train.preset", "gpt2-adamw", "--train.tokens", str(30 * 16 * 256),
           "--train.bookkeeping.log_every", "5", *common)
    tok_s = summarise(calib)["tok_s"]
    baseline_tokens = int(tok_s * args.baseline_minutes * 60)

    runs = {
        "gpt2-adamw (baseline)": ["--train.preset", "gpt2-adamw", "--train.tokens", str(baseline_tokens)],
        "default": [],
    }
    results = {}
    for name, extra in runs.items():
        run = linked_run(data_run, OUT / name.split()[0])
        llmlab("pretrain", "--run_dir", str(run), *extra, *common)
        results[name] = summarise(run)
    base, new = results["gpt2-adamw (baseline)"], results["default"]
    reach = next((t for t, bpb in new["curve"] if bpb <= base["final_bpb"]), None)
    plot(results, OUT / "bpb_vs_time.png")
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n{'recipe':<24}{'tok/s':>9}{'MFU':>7}{'train s':>9}{'final bpb':>11}{'vs best compressor':>20}")
    for name, r in results.items():
        print(f"{name:<24}{r['tok_s']:>9,.0f}{r['mfu']:>7.0%}{r['train_seconds']:>9.0f}{r['final_bpb']:>11.3f}"
              f"{r['zip_view']['model_vs_best_compressor']:>20.3f}")
    if reach is None:
        print(f"default never reached the baseline's final bpb {base['final_bpb']:.3f}")
    else:
        print(f"default reaches the baseline's final bpb {base['final_bpb']:.3f} after {reach:.0f} s "
              f"= {reach / base['train_seconds']:.2f} of the baseline's {base['train_seconds']:.0f} s (target <= 0.5)")
    print(f"plot: {OUT / 'bpb_vs_time.png'}")


if __name__ == "__main__":
    main()
