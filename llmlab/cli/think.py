"""`llmlab think`: the System 2 lab (llmlab/labs/think/): accuracy against inference FLOPs for each test-time
strategy (greedy, sampling, majority vote, best-of-N by a verifier and by likelihood, adaptive best-of-N) and the
coverage curve, on held-out problems of a checkable task.

    llmlab think --run_dir runs/r --think.model runs/r/chat_sft --preset quick      # a few minutes
    llmlab think --run_dir runs/r --think.model runs/r/chat_sft                     # >= 500 problems, ~20 min
    llmlab report --run_dir runs/r                                                   # its section of the card
"""

from __future__ import annotations

from pathlib import Path

from llmlab.labs.think.config import ThinkOverrides
from llmlab.layout import DEFAULT_RUN_DIR


def think(run_dir: Path = DEFAULT_RUN_DIR, preset: str = "default", think: ThinkOverrides = ThinkOverrides()) -> None:
    """Run (or resume) the System 2 experiment into <run_dir>/labs/think/.

    Args:
        run_dir: the run directory (the lab writes <run_dir>/labs/think/).
        preset: default (>= 500 held-out problems, 64 samples each, coverage to k = 1024) or quick (the same code
            path in a few minutes).
        think: the experiment's settings; unset ones keep the preset's.
    """
    from llmlab.labs.think.config import think_config
    from llmlab.labs.think.run import run_think

    results = run_think(Path(run_dir), think_config(preset, think))
    level = results["levels"][str(results["headline_level"])]
    best = {name: points[-1] for name, points in level["strategies"].items()}
    print(f"level {results['headline_level']}: greedy {level['greedy']['rate']:.3f}; at k={best['majority']['k']}: "
          + ", ".join(f"{name} {p['rate']:.3f}" for name, p in best.items())
          + f" ({results['seconds']:.0f} s) -> {Path(run_dir) / 'labs' / 'think'}")
