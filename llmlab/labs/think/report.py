"""The System 2 lab's plots and report-card section, from its results (llmlab.labs.think.run).

    write_plots_and_section(record, results)   # accuracy.png, coverage.png, section.json in <run_dir>/labs/think/

accuracy.png: per level, accuracy (95% band over problems) against inference FLOPs per problem, log scale, one line
per strategy (points at k = 1, 2, 4, ... samples), greedy and difficulty-adaptive best-of-N as points.
coverage.png: pass@k against k with the fitted exponentiated power law -log(pass@k) = a k^b.
"""

from __future__ import annotations

from llmlab.labs.record import LabRecord

COLORS = {"majority": "tab:blue", "verifier best-of": "tab:green", "likelihood best-of": "tab:purple",
          "coverage": "tab:gray"}


def _pct(r: dict | None) -> str:
    if r is None:
        return "-"
    lo, hi = r["ci95"]
    return f"{r['rate']:.3f} [{lo:.3f}, {hi:.3f}]"


def accuracy_png(path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(f"level {level}", curves) for level, curves in results["levels"].items()]
    if len(panels) > 1:
        panels.append(("all levels", results["all_levels"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.6), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels):
        for name, points in curves["strategies"].items():
            x = [p["flops"] for p in points]
            style = "--" if name == "coverage" else "o-"
            ax.plot(x, [p["rate"] for p in points], style, color=COLORS[name], markersize=3,
                    label="coverage (oracle)" if name == "coverage" else name)
            ax.fill_between(x, [p["ci95"][0] for p in points], [p["ci95"][1] for p in points], color=COLORS[name],
                            alpha=0.12)
        g = curves["greedy"]
        ax.errorbar([g["flops"]], [g["rate"]], yerr=[[g["rate"] - g["ci95"][0]], [g["ci95"][1] - g["rate"]]],
                    fmt="ks", markersize=5, label="greedy")
        if "adaptive" in curves:
            a = curves["adaptive"]
            ax.plot([a["flops"]], [a["rate"]], "r*", markersize=10, label="adaptive best-of")
        ax.set_xscale("log")
        ax.set_xlabel("inference FLOPs per problem")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def coverage_png(path, coverage: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    ax.plot(coverage["k"], coverage["pass_at_k"], "o", color="tab:gray", label="pass@k (unbiased)")
    fit = coverage.get("fit", {})
    if "a" in fit:
        k = np.geomspace(1, coverage["k"][-1], 100)
        ax.plot(k, np.exp(-fit["a"] * k ** fit["b"]), "-", color="tab:red",
                label=f"exp(-{fit['a']:.2f} k^{fit['b']:.2f}), R²={fit['r2']:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("coverage")
    ax.set_ylim(0, 1)
    ax.set_title(f"coverage, {coverage['problems']} problems")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def headline_rows(curves: dict) -> list[list[str]]:
    """One table row per strategy and k: accuracy [95%] and FLOPs per problem."""
    g = curves["greedy"]
    rows = [["greedy", "1", _pct(g), f"{g['flops']:.3g}"]]
    for name, points in curves["strategies"].items():
        rows += [[name, str(p["k"]), _pct(p), f"{p['flops']:.3g}"] for p in points]
    if "adaptive" in curves:
        a = curves["adaptive"]
        rows.append(["adaptive best-of", f"{a['mean_samples']:.1f} (mean)", _pct(a), f"{a['flops']:.3g}"])
    return rows


def write_plots_and_section(record: LabRecord, results: dict) -> None:
    accuracy_png(record.path("accuracy.png"), results)
    blocks = [("p", f"Model {results['model']} on {results['task']}, {results['problems']} held-out problems; each "
                    "strategy chooses among the same sampled attempts, so the comparisons are paired. Accuracy is "
                    "the mean over problems (95% interval over problems); FLOPs are the inference compute per "
                    "problem (prefill, decode, the verifier's reading).")]
    headline = results["levels"][str(results["headline_level"])]
    blocks.append(("h3", f"Level {results['headline_level']} (headline)"))
    blocks.append(("table", ["strategy", "k", "accuracy [95%]", "FLOPs / problem"], headline_rows(headline)))
    if "verifier_audit" in results["all_levels"]:
        v = results["all_levels"]["verifier_audit"]
        blocks.append(("p", f"Verifier audited on the {v['attempts']} held-out attempts against the checker "
                            f"({v['right']} right): precision {_pct(v['precision'])}, recall {_pct(v['recall'])}, "
                            f"accuracy {_pct(v['accuracy'])}."))
    blocks.append(("image", "accuracy.png", "accuracy against inference FLOPs per strategy"))
    if "coverage" in results:
        coverage_png(record.path("coverage.png"), results["coverage"])
        fit = results["coverage"].get("fit", {})
        said = (f"fit -log(pass@k) = {fit['a']:.3f} k^{fit['b']:.3f}, R² {fit['r2']:.3f} over {fit['points']} "
                f"points" if "a" in fit else fit.get("error", ""))
        blocks.append(("p", f"Coverage on {results['coverage']['problems']} problems with "
                            f"{results['coverage']['samples']} samples each: {said}."))
        blocks.append(("image", "coverage.png", "coverage against k"))
    record.write_section("System 2: accuracy against thinking compute", blocks)
