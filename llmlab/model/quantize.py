"""Int8 weight-only quantization for inference: each matrix stored as int8 with one float32 scale per output row
(symmetric absmax: w ~ scale * q, q in -127..127), multiplied by float32 activations in PyTorch's int8-weight CPU
kernel (`torch._weight_int8pack_mm`, the one torchao and gpt-fast use), which reads a quarter of fp32's bytes.

    model = quantize_int8(model)        # in place: every block matrix and the output head; returns the model
    load_model("runs/x/chat_dpo", quantize="int8")     # the same, at load time (serve / chat / sample / eval)

Activations stay float32 (unlike llama.cpp's Q8_0 dot products, which quantize them too), so the only error is the
weights' rounding: at most half a step, scale / 2, per weight. The token embedding stays float32 (a lookup, not a
matmul); a tied head gets its own int8 copy of the embedding for the output matmul. Inference only: training and
LoRA need the float weights. tests/test_quantize.py checks the numerics on small models. On SmolLM2 (bench/
bench_engine.py, docs/LOG.md 2026-12-04) it keeps the numerics (held-out bits per byte +0.05%) and halves the
weights' memory, but this kernel is slower than float32 on this 2-core CPU (decode 15.6 vs 31.1 tok/s; prefill 34 vs
849): a speed path it is not, yet.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from llmlab.errors import LlmlabError

FORMATS = ("int8",)


def int8_rows(weight: Tensor) -> tuple[Tensor, Tensor]:
    """(q int8 (out, in), scales float32 (out,)) with weight ~ scales[:, None] * q, per output row."""
    w = weight.detach().float()
    scales = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0  # (out,)
    q = torch.round(w / scales[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), scales.contiguous()


class Int8Linear(nn.Module):
    """y = x @ (scales * q).T, for float32 x of any leading shape (..., in)."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        q, scales = int8_rows(weight)
        self.register_buffer("q", q)
        self.register_buffer("scales", scales)
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        y = torch._weight_int8pack_mm(x.reshape(-1, self.in_features).float().contiguous(), self.q, self.scales)
        return y.reshape(*lead, self.out_features)


def quantize_int8(model: nn.Module) -> nn.Module:
    """Replace the model's block matrices and output head by Int8Linear, in place (CPU only); returns the model."""
    if next(model.parameters()).device.type != "cpu":
        raise LlmlabError("int8 weight-only quantization runs on the CPU kernel; load the model on the CPU")
    for block in model.blocks:
        for parent in (block.attn, block.mlp):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, Int8Linear(child.weight))
    model.quantized_head = Int8Linear(model.embed.weight if model.cfg.tie_embeddings else model.lm_head.weight)
    if not model.cfg.tie_embeddings:
        del model.lm_head  # its int8 copy does the work; the float matrix would only take memory
    model.requires_grad_(False)
    return model


def quantize(model: nn.Module, kind: str | None) -> nn.Module:
    """The model in format `kind` (None: as it is)."""
    if kind is None:
        return model
    if kind not in FORMATS:
        raise LlmlabError(f"quantize {kind!r}: unknown; formats are {', '.join(FORMATS)}")
    return quantize_int8(model)
