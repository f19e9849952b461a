"""`llmlab prefs`: preference tuning (DPO) of a chat model on comparisons (see llmlab/train/prefs.py).

    llmlab prefs --run_dir runs/x
    llmlab prefs --run_dir runs/x --prefs.train_files '[pairs.jsonl]' --prefs.beta 0.2
"""

from __future__ import annotations

from pathlib import Path

from llmlab.layout import DEFAULT_RUN_DIR, RunDir
from llmlab.train.prefs import PrefsConfig


def prefs(run_dir: Path = DEFAULT_RUN_DIR, prefs: PrefsConfig = PrefsConfig(), resume: bool = False) -> None:
    """Tune <run_dir>/chat_sft (or --prefs.start) with DPO; writes <run_dir>/prefs/ and the model folder <run_dir>/chat_dpo/.

    Args:
        run_dir: the run directory.
        prefs: data, DPO and optimisation settings.
        resume: continue from the newest intact checkpoint in <run_dir>/prefs/checkpoints.
    """
    from llmlab.train.prefs import prefs as run_prefs

    s = run_prefs(run_dir, prefs, resume)
    for name in ("before", "after"):
        if s.get(name):
            print(f"held-out pairs, {'starting model' if name == 'before' else 'after DPO':<15} "
                  + ", ".join(f"{k} {v:.3f}" for k, v in s[name].items()))
    print(f"chat model: {RunDir(run_dir).model_of('prefs')} ({s['steps']} steps, {s['train_seconds']:.0f} s)")
