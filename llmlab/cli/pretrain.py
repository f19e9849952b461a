"""`llmlab pretrain`: train the run's base model on its token shards (see llmlab/train/pretrain.py).

    llmlab pretrain --run_dir runs/x
    llmlab pretrain --run_dir runs/x --train.depth 4 --train.optimizer adamw --train.preset gpt2
    torchrun --standalone --nproc_per_node 2 -m llmlab pretrain --run_dir runs/x
"""

from __future__ import annotations

from pathlib import Path

from llmlab.layout import DEFAULT_RUN_DIR, RunDir
from llmlab.train.pretrain import PretrainConfig


def pretrain(run_dir: Path = DEFAULT_RUN_DIR, train: PretrainConfig = PretrainConfig(), resume: bool = False) -> None:
    """Pre-train a base model: writes <run_dir>/pretrain/ (metrics, checkpoints) and the model folder <run_dir>/base/.

    Args:
        run_dir: the run directory (holds tokenizer/ and data/tokens/ from `llmlab data prepare`).
        train: model size and training settings (the depth dial derives the rest).
        resume: continue from the newest intact checkpoint in <run_dir>/pretrain/checkpoints.
    """
    from llmlab.train.pretrain import pretrain as run_pretrain

    summary = run_pretrain(run_dir, train, resume)
    if "val_bpb" in summary:
        print(f"base model: {RunDir(run_dir).model_of('pretrain')} (held-out bpb {summary['val_bpb']:.3f}, "
              f"{summary['train_seconds']:.0f} s of training)")
