"""`llmlab sft`: supervised fine-tuning of a base model into a chat model (see llmlab/train/sft.py).

    llmlab sft --run_dir runs/x
    llmlab sft --run_dir runs/x --sft.train_files '[chats.jsonl]' --sft.epochs 3
    llmlab sft --run_dir runs/smol --sft.base smollm2 --sft.lora_rank 8 --sft.train_files '[chats.jsonl]'   # LoRA on SmolLM2
"""

from __future__ import annotations

from pathlib import Path

from llmlab.layout import DEFAULT_RUN_DIR, RunDir
from llmlab.train.sft import SFTConfig


def sft(run_dir: Path = DEFAULT_RUN_DIR, sft: SFTConfig = SFTConfig(), resume: bool = False) -> None:
    """Fine-tune <run_dir>/base (or --sft.base) on chat data; writes <run_dir>/sft/ and the model folder <run_dir>/chat_sft/.

    Args:
        run_dir: the run directory.
        sft: data, optimisation and checkpoint settings.
        resume: continue from the newest intact checkpoint in <run_dir>/sft/checkpoints.
    """
    from llmlab.train.sft import sft as run_sft

    summary = run_sft(run_dir, sft, resume)
    held_out = f", held-out loss {summary['val_loss']:.3f}" if "val_loss" in summary else ""
    print(f"chat model: {RunDir(run_dir).model_of('sft')} ({summary['steps']} steps, {summary['train_seconds']:.0f} s{held_out})")
