"""The config groups every training stage shares (pretrain, sft, prefs, and the labs' trainers):

    Schedule      the learning-rate schedule: linear warmup, constant, linear warmdown to 0
    Bookkeeping   logging, evaluation, checkpoints, placement: none of it changes the arithmetic of training, so
                  the resume fingerprint leaves the whole group out (a run may be resumed with other values, and
                  with another number of processes, which keeps the global batch)

A stage's config holds them as fields (`cfg.schedule`, `cfg.bookkeeping`), each stage with its own defaults:
`--train.schedule.warmup_steps 50`, `--sft.bookkeeping.eval_every 0`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass

from llmlab.files import fingerprint


@dataclass
class Schedule:
    """The learning-rate schedule: linear warmup, constant, then a linear decay to 0.

    Args:
        warmup_steps: linear warmup steps.
        warmdown_frac: fraction of the steps at the end over which the rate decays linearly to 0.
    """

    warmup_steps: int = 20
    warmdown_frac: float = 0.4


@dataclass
class Bookkeeping:
    """What a run logs, evaluates and keeps, and where it runs (not part of the resume fingerprint).

    Args:
        log_every: steps between metric lines.
        eval_every: steps between held-out evaluations (0: only at the end).
        checkpoint_every: steps between checkpoints (0: only at the end).
        keep_checkpoints: how many of the newest checkpoints to keep.
        device: auto (cuda if available), cpu or cuda.
        tensorboard: also write TensorBoard event files to the stage's tensorboard/ folder.
    """

    log_every: int = 10
    eval_every: int = 100
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    device: str = "auto"
    tensorboard: bool = False


def settings_fingerprint(cfg, **context) -> str:
    """What a checkpoint must match to be resumed: the config's fields except its Bookkeeping group, and the given
    context (data, starting model, tokenizer...)."""
    assert is_dataclass(cfg), "a stage's settings are a dataclass"
    settings = {f.name: getattr(cfg, f.name) for f in fields(cfg) if not isinstance(getattr(cfg, f.name), Bookkeeping)}
    return fingerprint({"cfg": settings, **context})
