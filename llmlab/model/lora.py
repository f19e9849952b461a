"""LoRA (Hu et al., 2021): fine-tune a frozen model through low-rank updates of its block matrices.

    adapters = add_lora(model, rank=8, alpha=16)     # freezes every parameter, adds trainable A, B to each Linear
    ... train (only the adapters have gradients) ...
    merge_lora(model)                                # W += (alpha / rank) * B @ A; back to plain nn.Linear

Each adapted layer computes W x + (alpha / rank) * B (A x) with A (rank, in) drawn small and B (out, rank) zero,
so training starts exactly at the base model. After merging, the model is an ordinary Transformer again and is saved
as any model folder; a merged model computes what the adapted one did (up to float rounding).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from llmlab.errors import LlmlabError


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base, self.scale = base, alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))  # (r, in)
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))  # (out, r)
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear initialises its weight

    def forward(self, x: Tensor) -> Tensor:  # x (..., in) -> (..., out)
        return self.base(x) + self.scale * ((x @ self.lora_a.t()) @ self.lora_b.t())


def add_lora(model: nn.Module, rank: int, alpha: float) -> list[nn.Parameter]:
    """Freeze `model` and wrap every nn.Linear inside its blocks; returns the new trainable parameters."""
    if rank < 1:
        raise LlmlabError(f"LoRA rank must be a positive integer, got {rank}")
    model.requires_grad_(False)
    adapters = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and f"{name}.{child_name}".startswith("blocks."):
                wrapped = LoRALinear(child, rank, alpha)
                setattr(module, child_name, wrapped)
                adapters += [wrapped.lora_a, wrapped.lora_b]
    if not adapters:
        raise LlmlabError("LoRA found no linear layers to adapt under blocks.")
    return adapters


@torch.no_grad()
def merge_lora(model: nn.Module) -> None:
    """Fold every adapter into its base weight and put the plain nn.Linear back."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                child.base.weight += child.scale * (child.lora_b @ child.lora_a)
                setattr(module, child_name, child.base)
    model.requires_grad_(True)
