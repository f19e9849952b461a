"""`llmlab speedrun`: the whole pipeline in one resumable command (see llmlab/pipeline/speedrun.py).

    llmlab speedrun --run_dir runs/speedrun          # data -> tokenizer -> pretrain -> SFT -> DPO -> eval -> report
    llmlab speedrun --run_dir runs/t --preset tiny           # every stage in a couple of minutes
    llmlab speedrun --run_dir runs/smol --preset smollm2     # SmolLM2-135M-Instruct through llmlab's SFT and DPO
    llmlab speedrun --run_dir runs/x --depth 4 --train.tokens 2000000 --sft.epochs 1
    torchrun --standalone --nproc_per_node 2 -m llmlab speedrun --run_dir runs/x
"""

from __future__ import annotations

from pathlib import Path

from llmlab.data.prepare import PrepareConfig
from llmlab.pipeline.speedrun import PrefsOverrides, SFTOverrides, TrainOverrides


def speedrun(
    run_dir: Path = Path("runs/speedrun"),
    preset: str = "default",
    depth: int | None = None,
    data: PrepareConfig = PrepareConfig(),
    vocab_size: int = 4096,
    train: TrainOverrides = TrainOverrides(),
    sft: SFTOverrides = SFTOverrides(),
    prefs: PrefsOverrides = PrefsOverrides(),
    eval_preset: str = "quick",
    seed: int = 0,
) -> None:
    """Run every stage not finished yet, then print where the report is and how to chat with the model.

    A finished stage is skipped on a re-run; a killed run continues where it stopped (training from its newest
    checkpoint). Progress, wall times and estimated costs: <run_dir>/speedrun.json; report: <run_dir>/report/.

    Args:
        run_dir: the run directory (every stage's outputs).
        preset: size preset: tiny (smoke run), default (depth 3, the CPU run), d6, d12 (meant for a GPU), or
            smollm2 (the packaged SmolLM2-135M-Instruct as the base instead of pre-training, then SFT and DPO).
        depth: the model's depth (size dial), overriding the preset's.
        data: sources and cleaning settings of `llmlab data prepare`.
        vocab_size: vocabulary of the tokenizer trained when the run has none.
        train: pre-training settings overriding the preset's: any field of `llmlab pretrain --train.*`, e.g.
            --train.tokens 409600 --train.bookkeeping.eval_every 0 (unset fields keep the preset's values).
        sft: SFT settings overriding the preset's (the fields of `llmlab sft --sft.*`), e.g. --sft.epochs 1.
        prefs: DPO settings overriding the preset's (the fields of `llmlab prefs --prefs.*`).
        eval_preset: the evaluation suite's preset (quick: every eval of the three models in a few minutes).
        seed: the evaluation's seed.
    """
    from llmlab.pipeline.speedrun import speedrun as run_speedrun

    run_speedrun(run_dir, preset, depth, data, vocab_size, train, sft, prefs, eval_preset, seed)
