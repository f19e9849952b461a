"""`llmlab flywheel`: turn flagged and corrected answers into the next served version (llmlab/pipeline/flywheel.py).

    llmlab flywheel --run_dir runs/x                                 # improves runs/x/chat_dpo into runs/x/chat_v2
    llmlab flywheel --run_dir runs/x --flywheel.start chat_v2 --flywheel.dpo true --flywheel.holdout 0.25
"""

from __future__ import annotations

from pathlib import Path

from llmlab.layout import DEFAULT_RUN_DIR
from llmlab.pipeline.flywheel import FlywheelConfig


def flywheel(run_dir: Path = DEFAULT_RUN_DIR, db: Path | None = None,
             flywheel: FlywheelConfig = FlywheelConfig()) -> None:
    """Export the labelers' corrections from the serving database, fine-tune the next version on them (mixed with
    old data), evaluate old and new on the flagged prompts and the regular chat evals, and register the new one.

    Args:
        run_dir: the run directory; the new version is saved as <run_dir>/<name>/.
        db: the serving database; None: <run_dir>/serve.sqlite.
        flywheel: what to start from, the new version's name, data mix, training and evaluation settings.
    """
    from llmlab.layout import RunDir
    from llmlab.pipeline.flywheel import flywheel as turn

    run = RunDir(run_dir)
    report = turn(run_dir, db or run.serve_db, flywheel)
    print(f"{report['corrections']} corrections ({report['trained']} trained on, {report['held_out']} held out), "
          f"{report['pairs']} preference pairs")
    for split in ("trained", "held_out"):
        if f"misbehaviour_{split}" in report:
            m = report[f"misbehaviour_{split}"]
            print(f"misbehaviour on the {split.replace('_', '-')} flagged prompts: {m['before']['rate']:.2f} "
                  f"-> {m['after']['rate']:.2f} (n={m['before']['n']}; not exactly the ideal: "
                  f"{m['before']['not_ideal']:.2f} -> {m['after']['not_ideal']:.2f})")
    for name, r in report.get("regular", {}).items():
        flag = "  WORSE beyond noise" if r["worse_beyond_noise"] else ""
        print(f"{name:<18} {r['before']:.3f} -> {r['after']:.3f} (n={r['n']}){flag}")
    name = report["name"]
    print(f"new version: {run.model(name)} (registered in the store); report: "
          f"{run.flywheel(name).root / 'report.json'}")
