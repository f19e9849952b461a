"""`llmlab report`: the report card of a run, regenerated at any time from what its directory holds.

    llmlab report --run_dir runs/speedrun      # -> runs/speedrun/report/report.md and report.html
"""

from __future__ import annotations

from pathlib import Path

from llmlab.layout import DEFAULT_RUN_DIR


def report(run_dir: Path = DEFAULT_RUN_DIR) -> None:
    """Write <run_dir>/report/report.md, report.html (self-contained) and loss_curves.png; stages not run yet are
    shown as such.

    Args:
        run_dir: the run directory to report on.
    """
    from llmlab.errors import LlmlabError
    from llmlab.report.render import write_report

    if not Path(run_dir).is_dir():
        raise LlmlabError(f"{run_dir}: no such run directory")
    md_path, html_path = write_report(Path(run_dir))
    print(f"report: {md_path} and {html_path}")
