"""Learning-rate and Muon-momentum schedules: plain functions of the step, applied to the optimizer each step.

    for step in range(total_steps):
        apply_lr(opt, lr_multiplier(step, total_steps, warmup_steps=100, warmdown_frac=0.2))
        apply_muon_momentum(opt, muon_momentum(step))
        ...

The learning rate is warmup -> constant -> linear warmdown ("trapezoid" / warmup-stable-decay): linear from
1/warmup_steps up to 1 over the first `warmup_steps`, flat, then linear down to `final_frac` over the last
`warmdown_frac` of training. Unlike cosine, the flat part does not depend on the total length, so a run can be
extended before its warmdown starts; at equal length it matches cosine (Hagele et al., 2024). Being stateless
functions of `step`, the schedules need nothing saved to resume: the trainer calls them with the restored step.
"""

from __future__ import annotations

import torch

from llmlab.errors import LlmlabError


def lr_multiplier(
    step: int, total_steps: int, warmup_steps: int, warmdown_frac: float, final_frac: float = 0.0
) -> float:
    """The factor in [0, 1] to multiply each group's initial lr by at `step` (0-based); `final_frac` at the end.

    Warmup starts at 1/warmup_steps, not 0, so step 0 is not wasted, and reaches 1 at step warmup_steps - 1.
    If warmup and warmdown overlap (a very short run), the smaller of the two applies.
    """
    if total_steps < 1 or warmup_steps < 0 or not 0 <= warmdown_frac <= 1 or not 0 <= final_frac <= 1:
        raise LlmlabError(
            f"bad lr schedule: total_steps={total_steps} (>= 1), warmup_steps={warmup_steps} (>= 0), "
            f"warmdown_frac={warmdown_frac} and final_frac={final_frac} (both in [0, 1])"
        )
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    warmdown_steps = round(warmdown_frac * total_steps)
    if warmdown_steps == 0 or step < total_steps - warmdown_steps:
        return warm
    left = max(0.0, (total_steps - step) / warmdown_steps)  # 1 at the start of the warmdown, 0 at total_steps
    return min(warm, final_frac + (1 - final_frac) * left)


def apply_lr(optimizer: torch.optim.Optimizer, multiplier: float) -> None:
    """Set every param group's lr to its `initial_lr` times `multiplier`."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * multiplier


# Muon momentum warmup from modded-nanogpt: early gradients change direction quickly, so a shorter memory (0.85)
# follows them better; by ~300 steps they have settled and the full 0.95 smooths noise.
def muon_momentum(step: int, warmup_steps: int = 300, start: float = 0.85, end: float = 0.95) -> float:
    """Momentum for Muon groups at `step`: linear from `start` to `end` over `warmup_steps`, then `end`."""
    frac = min(step / warmup_steps, 1.0) if warmup_steps > 0 else 1.0
    return (1 - frac) * start + frac * end


def apply_muon_momentum(optimizer: torch.optim.Optimizer, momentum: float) -> None:
    """Set `momentum` on the optimizer's Muon groups (those with kind "muon"); other groups are left alone."""
    for group in optimizer.param_groups:
        if group.get("kind") == "muon":
            group["momentum"] = momentum
